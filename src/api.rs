//! The one room that calls the service: paced, paginated `DescribeStream`, `GetShardIterator`
//! and `GetRecords`, each through the same retry-with-backoff loop.
//!
//! Everything here moves data between the SDK client and the pure core; what a fault *means*
//! is decided by [`retry::classify`](crate::retry::classify) and by the shard cursor.
//! `GetRecords` pages are parsed by the crate itself unless told otherwise (see [`capture`]).

mod capture;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodbstreams::operation::get_records::GetRecordsOutput;
use aws_sdk_dynamodbstreams::types::{ShardFilter, ShardFilterType, ShardIteratorType};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use tokio::time::Instant;

use crate::budget::Budget;
use crate::config::{Decoding, Options};
use crate::error::{Error, ErrorKind, Result};
use crate::event::{Change, Origin};
use crate::lineage::ShardInfo;
use crate::raw::RawPage;
use crate::retry::{Fault, RetryPolicy, classify, to_error};
use crate::sequence::SequenceNumber;
use crate::status::{PageCounters, PageDecoding};
use crate::telemetry::{CallMetrics, Operation};

/// The service's page size cap for `DescribeStream`.
const LIST_LIMIT: i32 = 100;
/// A listing of more pages than this is a server that never ends its pagination.
pub(crate) const MAX_LIST_PAGES: usize = 10_000;

/// What every reader of one consumer shares: the client, the stream, the options.
#[derive(Debug)]
pub(crate) struct Context {
    client: Client,
    pub(crate) stream_arn: Arc<str>,
    pacer: Arc<Pacer>,
    pub(crate) options: Options,
    /// How the pages were decoded, for [`Status::pages`](crate::status::Status::pages).
    pub(crate) pages: Arc<PageCounters>,
    /// The stream's memory budget, shared by its readers.
    pub(crate) budget: Arc<Budget>,
    /// Polls, retries and throttles, for the `metrics` feature.
    calls: CallMetrics,
}

/// One `GetRecords` page, decoded by the SDK or by the crate.
#[derive(Debug)]
pub(crate) enum Fetched {
    Sdk(GetRecordsOutput),
    Raw(RawPage),
}

impl Fetched {
    /// The bytes the page holds in memory, where known (the crate's parse keeps the body and
    /// a table of its records; the changes made from it are counted apart).
    pub(crate) fn bytes(&self) -> Option<usize> {
        match self {
            Self::Sdk(_) => None,
            Self::Raw(page) => Some(page.bytes()),
        }
    }

    /// The page's changes up to the first malformed record (beside them), and its next
    /// iterator (`None`: the shard's end).
    pub(crate) fn into_changes(
        self,
        origin: &Arc<Origin>,
    ) -> (Vec<Change>, Option<Error>, Option<String>) {
        match self {
            Self::Sdk(out) => {
                let (changes, malformed) =
                    Change::from_records(origin, out.records.unwrap_or_default());
                (changes, malformed, out.next_shard_iterator)
            }
            Self::Raw(mut page) => {
                let next = page.take_next();
                let (changes, malformed) = Change::from_page(origin, page);
                (changes, malformed, next)
            }
        }
    }
}

/// A call that failed for good (after the retries its fault allows), with what the fault
/// means for the caller.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) fault: Fault,
    pub(crate) error: Error,
}

impl Context {
    pub(crate) fn new(client: Client, stream_arn: Arc<str>, options: Options) -> Self {
        Self {
            pacer: Pacer::shared(&stream_arn, options.describe_interval),
            budget: Arc::new(Budget::new(options.memory_budget)),
            calls: CallMetrics::new(&stream_arn),
            client,
            stream_arn,
            options,
            pages: Arc::default(),
        }
    }

    /// Sends an SDK request of `operation` through [`with_retries`], turning its errors into
    /// [`Failure`]s that name the call, the stream and the shard.
    async fn retrying<T, E, Fut>(
        &self,
        operation: Operation,
        what: &str,
        shard: Option<&str>,
        mut send: impl FnMut() -> Fut,
    ) -> Result<T, Failure>
    where
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let label = format!("{what} on {}", self.stream_arn);
        let seen = |fault, retried| self.calls.fault(operation, fault, retried);
        with_retries_seen(&self.options.retry, &label, shard, seen, || {
            let call = send();
            async {
                call.await.map_err(|err| {
                    let fault = classify(&err);
                    let error = to_error(fault, &label, err);
                    Failure {
                        fault,
                        error: match shard {
                            Some(shard) => error.with_shard(shard),
                            None => error,
                        },
                    }
                })
            }
        })
        .await
    }

    /// A shard iterator of `kind` (at or after `seq` for the sequence-number kinds).
    pub(crate) async fn shard_iterator(
        &self,
        shard: &str,
        kind: ShardIteratorType,
        seq: Option<&SequenceNumber>,
    ) -> Result<String, Failure> {
        let what = format!(
            "GetShardIterator ({}) on {}",
            kind.as_str(),
            self.stream_arn
        );
        let out = self
            .retrying("GetShardIterator", &what, Some(shard), || {
                self.client
                    .get_shard_iterator()
                    .stream_arn(&*self.stream_arn)
                    .shard_id(shard)
                    .shard_iterator_type(kind.clone())
                    .set_sequence_number(seq.map(|s| s.as_str().to_owned()))
                    .send()
            })
            .await?;
        out.shard_iterator.ok_or_else(|| Failure {
            fault: Fault::Invalid,
            error: Error::new(
                ErrorKind::InvalidRequest,
                format!("{what} returned no iterator"),
            )
            .with_shard(shard),
        })
    }

    /// One page of a shard: parsed by the crate ([`Decoding::Raw`], unless the parse declines
    /// the page) or by the SDK.
    pub(crate) async fn get_records(
        &self,
        shard: &str,
        iterator: &str,
    ) -> Result<Fetched, Failure> {
        let limit = i32::try_from(self.options.page_size).unwrap_or(1000);
        let request = || {
            self.client
                .get_records()
                .shard_iterator(iterator)
                .limit(limit)
        };
        if self.options.decoding == Decoding::Sdk {
            let out = self
                .retrying("GetRecords", "GetRecords", Some(shard), || request().send())
                .await?;
            self.calls.polled(shard);
            self.pages.count(PageDecoding::Sdk);
            return Ok(Fetched::Sdk(out));
        }
        let slot = capture::Slot::default();
        let out = self
            .retrying("GetRecords", "GetRecords", Some(shard), || {
                let capture = capture::Capture::new(&slot);
                request().customize().interceptor(capture).send()
            })
            .await?;
        self.calls.polled(shard);
        Ok(match slot.take() {
            Some(page) => {
                self.pages.count(PageDecoding::Raw);
                Fetched::Raw(page)
            }
            None => {
                self.pages.count(PageDecoding::Fallback);
                Fetched::Sdk(out)
            }
        })
    }

    /// Every shard of the stream: follows `LastEvaluatedShardId` until it is absent (a present
    /// one does not promise more shards).
    pub(crate) async fn list_all(&self) -> Result<Vec<ShardInfo>> {
        self.list(None).await
    }

    /// One page of the whole listing, starting after shard `start`, and where the next one
    /// starts (`None`: this was the last).
    pub(crate) async fn list_page(
        &self,
        start: Option<String>,
    ) -> Result<(Vec<ShardInfo>, Option<String>)> {
        self.describe(start, None).await
    }

    /// The listed children of one shard (`ShardFilter` `CHILD_SHARDS`). Entries that are not
    /// children (some emulators return the shard itself) are dropped.
    pub(crate) async fn list_children(&self, parent: &Arc<str>) -> Result<Vec<ShardInfo>> {
        let filter = ShardFilter::builder()
            .r#type(ShardFilterType::ChildShards)
            .shard_id(parent.to_string())
            .build();
        let mut children = self.list(Some(filter)).await?;
        children.retain(|s| s.parent.as_ref() == Some(parent));
        Ok(children)
    }

    async fn list(&self, filter: Option<ShardFilter>) -> Result<Vec<ShardInfo>> {
        let mut shards = Vec::new();
        let mut start: Option<String> = None;
        for _ in 0..MAX_LIST_PAGES {
            let (page, last) = self.describe(start.clone(), filter.clone()).await?;
            shards.extend(page);
            match last {
                // A server that hands back the page start it was given would loop forever.
                Some(last) if Some(&last) != start.as_ref() => start = Some(last),
                _ => return Ok(shards),
            }
        }
        Err(Error::new(
            ErrorKind::InvalidRequest,
            format!("DescribeStream kept paginating past {MAX_LIST_PAGES} pages"),
        ))
    }

    /// One paced `DescribeStream` page and the shard to start the next one after.
    async fn describe(
        &self,
        start: Option<String>,
        filter: Option<ShardFilter>,
    ) -> Result<(Vec<ShardInfo>, Option<String>)> {
        let out = self
            .retrying("DescribeStream", "DescribeStream", None, || {
                let request = self
                    .client
                    .describe_stream()
                    .stream_arn(&*self.stream_arn)
                    .limit(LIST_LIMIT)
                    .set_exclusive_start_shard_id(start.clone())
                    .set_shard_filter(filter.clone());
                let pacer = self.pacer.clone();
                async move {
                    pacer.wait().await;
                    request.send().await
                }
            })
            .await
            .map_err(|failure| failure.error)?;
        let Some(desc) = out.stream_description else {
            return Ok((Vec::new(), None));
        };
        let shards = desc
            .shards
            .unwrap_or_default()
            .into_iter()
            .filter_map(|s| {
                Some(ShardInfo {
                    id: Arc::from(s.shard_id?),
                    parent: s.parent_shard_id.map(Arc::from),
                    closed: s
                        .sequence_number_range
                        .is_some_and(|r| r.ending_sequence_number.is_some()),
                })
            })
            .collect();
        Ok((shards, desc.last_evaluated_shard_id))
    }
}

/// Makes a call until it succeeds, fails for good, or its transient faults (throttling, 5xx,
/// transport) have used up `retry`'s budget, backing off with jitter: the one retry loop of the
/// crate, for the service's calls and the lease table's.
pub(crate) async fn with_retries<T, Fut>(
    retry: &RetryPolicy,
    what: &str,
    shard: Option<&str>,
    call: impl FnMut() -> Fut,
) -> Result<T, Failure>
where
    Fut: Future<Output = Result<T, Failure>>,
{
    with_retries_seen(retry, what, shard, |_, _| {}, call).await
}

/// [`with_retries`], telling `seen` of every failure and whether it is retried (the metrics'
/// retries and throttles).
async fn with_retries_seen<T, Fut>(
    retry: &RetryPolicy,
    what: &str,
    shard: Option<&str>,
    seen: impl Fn(Fault, bool),
    mut call: impl FnMut() -> Fut,
) -> Result<T, Failure>
where
    Fut: Future<Output = Result<T, Failure>>,
{
    let mut attempt = 0;
    loop {
        let failure = match call().await {
            Ok(out) => return Ok(out),
            Err(failure) => failure,
        };
        let retried = failure.fault.is_transient() && attempt < retry.max_retries;
        seen(failure.fault, retried);
        if !retried {
            return Err(failure);
        }
        let delay = retry.delay(attempt, fastrand::f64());
        tracing::warn!(shard, fault = ?failure.fault, attempt, ?delay, "{what} failed; retrying");
        attempt += 1;
        tokio::time::sleep(delay).await;
    }
}

/// Spaces `DescribeStream` calls: the service allows 10 per second per stream, shared by
/// every consumer of the stream. Consumers of the same stream in one process share a pacer.
#[derive(Debug)]
struct Pacer {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    /// The pacer of `stream_arn` for this process, created with `interval` if none is alive.
    fn shared(stream_arn: &str, interval: Duration) -> Arc<Self> {
        static PACERS: OnceLock<Mutex<HashMap<String, Weak<Pacer>>>> = OnceLock::new();
        let mut pacers = PACERS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        pacers.retain(|_, p| p.strong_count() > 0);
        if let Some(p) = pacers.get(stream_arn).and_then(Weak::upgrade) {
            return p;
        }
        let pacer = Arc::new(Self {
            interval,
            next: Mutex::new(None),
        });
        pacers.insert(stream_arn.to_owned(), Arc::downgrade(&pacer));
        pacer
    }

    /// Waits for this caller's slot.
    async fn wait(&self) {
        let now = Instant::now();
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let slot = next.map_or(now, |n| n.max(now));
            // The builder bounds the interval, so this cannot overflow; saturate regardless.
            *next = Some(slot.checked_add(self.interval).unwrap_or(slot));
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}
