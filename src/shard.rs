//! One shard as a stream of pages: iterators, expiry recovery, retries and polling.

use std::future::Future as _;
use std::sync::Arc;
use std::task::{Poll, ready};
use std::time::Duration;

use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use futures::{Stream, StreamExt as _};
use tokio::sync::mpsc;

use crate::discovery::Pacer;
use crate::error::{Error, ErrorKind, Result};
use crate::event::{Change, Gap};
use crate::retry::{Fault, RetryPolicy, classify, idle_delay, to_error};
use crate::sequence::SequenceNumber;
use crate::stream::Readers;

/// What every reader of one consumer shares.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) client: Client,
    pub(crate) stream_arn: Arc<str>,
    pub(crate) pacer: Arc<Pacer>,
    pub(crate) retry: RetryPolicy,
    pub(crate) page_size: i32,
    pub(crate) poll_interval: Duration,
    pub(crate) max_poll_interval: Duration,
    /// Catch-up mode: this many consecutive empty pages mean an open shard is read to its
    /// current end (empty pages happen mid-shard too, so one is not enough).
    pub(crate) catch_up: Option<u32>,
    /// Skip to the trim horizon when a position was trimmed, reporting the gap.
    pub(crate) skip_trimmed: bool,
    /// Where readers run.
    pub(crate) readers: Readers,
}

/// Where a shard's reading begins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ShardStart {
    TrimHorizon,
    /// At `LATEST` (only the shards open when the consumer starts); `since` is that moment in
    /// epoch seconds, used if the first iterator expires before anything was read.
    Latest {
        since: i64,
    },
    /// Right after a record already delivered.
    After(SequenceNumber),
    /// At `TRIM_HORIZON`, skipping records created before `since` (epoch seconds): a `LATEST`
    /// start that is being resumed.
    Since(i64),
}

/// The iterator request for a shard: after the last record read if there is one, else the
/// shard's own start. Never `LATEST` again once the first `LATEST` iterator is gone: records
/// written meanwhile would be lost.
pub(crate) fn iterator_request<'a>(
    start: &'a ShardStart,
    last_read: Option<&'a SequenceNumber>,
    first: bool,
) -> (ShardIteratorType, Option<&'a SequenceNumber>) {
    match (last_read, start) {
        (Some(seq), _) | (None, ShardStart::After(seq)) => {
            (ShardIteratorType::AfterSequenceNumber, Some(seq))
        }
        (None, ShardStart::Latest { .. }) if first => (ShardIteratorType::Latest, None),
        (None, _) => (ShardIteratorType::TrimHorizon, None),
    }
}

/// How a page ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PageEnd {
    /// The shard goes on.
    More,
    /// The shard is closed and this was its last page (`NextShardIterator` absent).
    ShardEnd,
    /// Catch-up mode: the open shard is read to its current end. Carries no records.
    CaughtUp,
}

/// Records read from one shard in one `GetRecords` call.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) shard: Arc<str>,
    pub(crate) changes: Vec<Change>,
    pub(crate) end: PageEnd,
    /// Records lost to retention just before this page (trim policy "skip").
    pub(crate) gap: Option<Gap>,
}

pub(crate) type ShardReader = std::pin::Pin<Box<dyn Stream<Item = Result<Page>> + Send>>;

/// Reads one shard from `start` to its end (or, in catch-up mode, to its current end).
///
/// Yields only pages with records, plus the final page (which may be empty). Recovers from
/// expired iterators silently; retries transient faults within the budget; any other error is
/// yielded once and ends the stream.
pub(crate) fn read_shard(ctx: Arc<Context>, shard: Arc<str>, mut start: ShardStart) -> ShardReader {
    Box::pin(async_stream::stream! {
        tracing::info!(shard = %shard, ?start, "shard started");
        let mut last_read: Option<SequenceNumber> = match &start {
            ShardStart::After(seq) => Some(seq.clone()),
            _ => None,
        };
        // Records from a LATEST iterator are new by definition: the creation-time filter only
        // applies when reading from the trim horizon on behalf of a LATEST start.
        let mut since = match start {
            ShardStart::Since(t) => Some(t),
            _ => None,
        };
        let mut iterator: Option<String> = None;
        let mut first = true;
        // Consecutive transient failures, and consecutive expiries: each has its own bound, so
        // a service that only ever answers "expired" cannot keep a reader looping.
        let mut failures = 0u32;
        let mut expiries = 0u32;
        let mut empty_pages = 0u32;
        let mut gap: Option<Gap> = None;
        loop {
            let current = match iterator.take() {
                Some(it) => it,
                None => {
                    match acquire(&ctx, &shard, &start, last_read.as_ref(), first).await {
                        Ok(it) => it,
                        Err(e) => {
                            if e.kind() == ErrorKind::TrimmedData && ctx.skip_trimmed && gap.is_none() && start != ShardStart::TrimHorizon {
                                gap = Some(skip_to_horizon(&shard, &mut start, &mut last_read, &mut since));
                                continue;
                            }
                            yield Err(e);
                            return;
                        }
                    }
                }
            };
            first = false;
            let result = ctx
                .client
                .get_records()
                .shard_iterator(current.clone())
                .limit(ctx.page_size)
                .send()
                .await;
            let out = match result {
                Ok(out) => out,
                Err(err) => {
                    let fault = classify(&err);
                    if fault == Fault::ExpiredIterator {
                        expiries += 1;
                    } else {
                        failures += 1;
                    }
                    match fault {
                        Fault::ExpiredIterator if expiries <= ctx.retry.max_retries => {
                            tracing::debug!(shard = %shard, "shard iterator expired; taking a new one");
                            if let (None, ShardStart::Latest { since: t }) = (&last_read, &start) {
                                since = Some(*t);
                            }
                        }
                        Fault::Trimmed if ctx.skip_trimmed && failures <= ctx.retry.max_retries => {
                            gap = Some(skip_to_horizon(&shard, &mut start, &mut last_read, &mut since));
                        }
                        f if f.is_transient() && failures <= ctx.retry.max_retries => {
                            let delay = ctx.retry.delay(failures - 1, fastrand::f64());
                            tracing::warn!(shard = %shard, ?fault, attempt = failures, ?delay, "GetRecords failed; retrying");
                            tokio::time::sleep(delay).await;
                            iterator = Some(current);
                        }
                        _ => {
                            yield Err(to_error(fault, "GetRecords", err)
                                .with_shard(shard.to_string())
                                .with_sequence_number(last_read.clone()));
                            return;
                        }
                    }
                    continue;
                }
            };
            failures = 0;
            expiries = 0;
            let next = out.next_shard_iterator;
            let mut changes = Vec::with_capacity(out.records.as_ref().map_or(0, Vec::len));
            let mut malformed = None;
            for record in out.records.unwrap_or_default() {
                match Change::from_record(&shard, record) {
                    Ok(change) => {
                        if last_read.as_ref().is_some_and(|last| change.sequence_number <= *last) {
                            // Already read: a re-acquired iterator may overlap.
                            continue;
                        }
                        last_read = Some(change.sequence_number.clone());
                        if let Some(t) = since {
                            if change.created_secs().is_some_and(|c| c < t) {
                                continue;
                            }
                            since = None;
                        }
                        changes.push(change);
                    }
                    Err(e) => { malformed = Some(e); break; }
                }
            }
            if let Some(err) = malformed {
                if !changes.is_empty() {
                    yield Ok(Page { shard: shard.clone(), changes, end: PageEnd::More, gap: gap.take() });
                }
                yield Err(err);
                return;
            }
            let had_records = !changes.is_empty();
            let Some(next) = next else {
                tracing::info!(shard = %shard, "shard read to its end");
                yield Ok(Page { shard: shard.clone(), changes, end: PageEnd::ShardEnd, gap: gap.take() });
                return;
            };
            iterator = Some(next);
            if had_records {
                empty_pages = 0;
                yield Ok(Page { shard: shard.clone(), changes, end: PageEnd::More, gap: gap.take() });
                // A backlog is read back to back: no sleep after a page with records.
                continue;
            }
            empty_pages += 1;
            if ctx.catch_up.is_some_and(|n| empty_pages >= n) {
                tracing::debug!(shard = %shard, "shard caught up");
                yield Ok(Page { shard: shard.clone(), changes, end: PageEnd::CaughtUp, gap: gap.take() });
                return;
            }
            let delay = if ctx.catch_up.is_some() {
                ctx.poll_interval.min(Duration::from_millis(50))
            } else {
                idle_delay(empty_pages, ctx.poll_interval, ctx.max_poll_interval)
            };
            tokio::time::sleep(delay).await;
        }
    })
}

/// Runs `reader` on its own task of `runtime`, a page at a time on demand.
///
/// The task reads the next page only once the merge asks for it, exactly when an inline reader
/// would be polled, so read-ahead and memory are unchanged; but the SDK's work for the page
/// (request signing and, above all, parsing the JSON) runs on a worker thread, in parallel
/// with the consumer and with other shards. Dropping the returned stream stops the task.
pub(crate) fn on_task(mut reader: ShardReader, runtime: &tokio::runtime::Handle) -> ShardReader {
    let (want, mut wanted) = mpsc::channel::<()>(1);
    let (send, pages) = mpsc::channel::<Result<Page>>(1);
    let task = runtime.spawn(async move {
        while wanted.recv().await.is_some() {
            let Some(item) = reader.next().await else {
                break;
            };
            if send.send(item).await.is_err() {
                break;
            }
        }
    });
    Box::pin(OnTask {
        want,
        asked: false,
        pages,
        task,
    })
}

/// The consumer's end of a reader running on its own task.
struct OnTask {
    want: mpsc::Sender<()>,
    /// A page was asked for and has not arrived yet.
    asked: bool,
    pages: mpsc::Receiver<Result<Page>>,
    task: tokio::task::JoinHandle<()>,
}

impl Stream for OnTask {
    type Item = Result<Page>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<Page>>> {
        if !self.asked {
            // At most one request is ever outstanding, so the channel has room; if the task
            // has ended, the page channel below says so.
            let _ = self.want.try_send(());
            self.asked = true;
        }
        if let Some(item) = ready!(self.pages.poll_recv(cx)) {
            self.asked = false;
            return Poll::Ready(Some(item));
        }
        // The task ended: its reader finished, or it panicked, or the runtime is shutting down.
        Poll::Ready(match ready!(std::pin::Pin::new(&mut self.task).poll(cx)) {
            Ok(()) => None,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Some(Err(Error::new(
                ErrorKind::Transport,
                "the shard's reader task was cancelled: the tokio runtime is shutting down",
            ))),
        })
    }
}

impl Drop for OnTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Trim policy "skip": read on from the trim horizon, and say what was lost.
fn skip_to_horizon(
    shard: &Arc<str>,
    start: &mut ShardStart,
    last_read: &mut Option<SequenceNumber>,
    since: &mut Option<i64>,
) -> Gap {
    tracing::warn!(shard = %shard, after = ?last_read, "records were trimmed before they were read; skipping to the trim horizon");
    *start = ShardStart::TrimHorizon;
    *since = None;
    Gap {
        shard_id: shard.to_string(),
        after: last_read.take(),
    }
}

async fn acquire(
    ctx: &Context,
    shard: &Arc<str>,
    start: &ShardStart,
    last_read: Option<&SequenceNumber>,
    first: bool,
) -> Result<String> {
    let (kind, seq) = iterator_request(start, last_read, first);
    let mut attempt = 0;
    loop {
        let result = ctx
            .client
            .get_shard_iterator()
            .stream_arn(&*ctx.stream_arn)
            .shard_id(&**shard)
            .shard_iterator_type(kind.clone())
            .set_sequence_number(seq.map(|s| s.as_str().to_owned()))
            .send()
            .await;
        match result {
            Ok(out) => {
                return out.shard_iterator.ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidRequest,
                        "GetShardIterator returned no iterator",
                    )
                    .with_shard(shard.to_string())
                });
            }
            Err(err) => {
                let fault = classify(&err);
                if fault.is_transient() && attempt < ctx.retry.max_retries {
                    let delay = ctx.retry.delay(attempt, fastrand::f64());
                    tracing::warn!(shard = %shard, ?fault, attempt, ?delay, "GetShardIterator failed; retrying");
                    attempt += 1;
                    tokio::time::sleep(delay).await;
                    continue;
                }
                let what = format!("GetShardIterator ({}) on {}", kind.as_str(), ctx.stream_arn);
                return Err(to_error(fault, &what, err)
                    .with_shard(shard.to_string())
                    .with_sequence_number(seq.cloned()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterator_requests_never_fall_back_to_latest() {
        let seq = SequenceNumber::new("100000000000000000001").unwrap();
        let latest = ShardStart::Latest { since: 0 };
        assert_eq!(
            iterator_request(&latest, None, true),
            (ShardIteratorType::Latest, None)
        );
        // The first LATEST iterator expired before anything was read: trim horizon, filtered.
        assert_eq!(
            iterator_request(&latest, None, false),
            (ShardIteratorType::TrimHorizon, None)
        );
        assert_eq!(
            iterator_request(&latest, Some(&seq), false),
            (ShardIteratorType::AfterSequenceNumber, Some(&seq))
        );
        let after = ShardStart::After(seq.clone());
        assert_eq!(
            iterator_request(&after, None, true),
            (ShardIteratorType::AfterSequenceNumber, Some(&seq))
        );
        for start in [ShardStart::TrimHorizon, ShardStart::Since(5)] {
            assert_eq!(
                iterator_request(&start, None, true),
                (ShardIteratorType::TrimHorizon, None)
            );
        }
    }
}
