//! [`ChangeStreamBuilder`]: every setting of a [`ChangeStream`], checked by `build()`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodbstreams::Client;

use crate::api::Context;
use crate::checkpoint::{Checkpoint, Positions, ShardPosition};
use crate::config::{
    Decoding, Options, Readers, StartPosition, TrimPolicy, at_epoch_secs, epoch_secs,
    validate_start,
};
use crate::error::{Error, ErrorKind, Result};
use crate::event::{Change, EventKind};
use crate::filter::Filter;
use crate::merge::Merge;
use crate::retry::RetryPolicy;
use crate::store::CheckpointStore;
use crate::stream::ChangeStream;

/// How far before the start a `LATEST` anchor is placed, for clock skew: records are stamped
/// by the service's clock, and a local clock running ahead must not make a resumed shard skip
/// records written after the start (re-delivering a few is the safe side).
const LATEST_CLOCK_ALLOWANCE_SECS: i64 = 2;

impl ChangeStream {
    /// Starts building a consumer of the stream `stream_arn`, read through `client`.
    ///
    /// The client needs a behavior version and an HTTP client (both set by
    /// `aws_config::load_defaults`): without a behavior version the SDK panics when the client
    /// is built, without an HTTP client every call fails with a dispatch error.
    pub fn builder(client: Client, stream_arn: impl Into<String>) -> ChangeStreamBuilder {
        ChangeStreamBuilder {
            client,
            stream_arn: stream_arn.into(),
            start: StartPosition::default(),
            checkpoint: None,
            options: Options::default(),
            filter: None,
            #[cfg(feature = "dynamodb-store")]
            lease: None,
        }
    }

    /// [`ChangeStream::builder`] with a client configured from the environment
    /// (`aws_config::load_defaults`: credentials, region, profiles).
    #[cfg(feature = "aws-config")]
    #[cfg_attr(docsrs, doc(cfg(feature = "aws-config")))]
    pub async fn from_env(stream_arn: impl Into<String>) -> ChangeStreamBuilder {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::builder(Client::new(&config), stream_arn)
    }
}

/// Builds a [`ChangeStream`]. Setters consume and return the builder; [`build`](Self::build)
/// checks every value.
#[must_use]
#[derive(Debug)]
pub struct ChangeStreamBuilder {
    client: Client,
    stream_arn: String,
    start: StartPosition,
    checkpoint: Option<Checkpoint>,
    options: Options,
    filter: Option<Filter>,
    #[cfg(feature = "dynamodb-store")]
    lease: Option<crate::lease::LeaseTable>,
}

impl ChangeStreamBuilder {
    /// The ARN of the stream this builder reads.
    pub fn stream_arn(&self) -> &str {
        &self.stream_arn
    }

    /// Where to start when no checkpoint is given. Default is [`StartPosition::Latest`].
    pub fn start(mut self, start: StartPosition) -> Self {
        self.start = start;
        self
    }

    /// Resume right after the event this checkpoint came from; `None` keeps the start position.
    /// The checkpoint must belong to this stream ([`ErrorKind::CheckpointMismatch`] from
    /// [`build`](Self::build) otherwise). Default is none.
    pub fn resume_from(mut self, checkpoint: impl Into<Option<Checkpoint>>) -> Self {
        self.checkpoint = checkpoint.into();
        self
    }

    /// Resumes from the checkpoint `store` holds for this stream, or keeps the
    /// [start position](Self::start) when it holds none: [`resume_from`](Self::resume_from)
    /// with [`CheckpointStore::load`].
    ///
    /// ```no_run
    /// # use dynamodb_stream::{ChangeStream, StartPosition};
    /// # use dynamodb_stream::store::FileStore;
    /// # async fn run(client: aws_sdk_dynamodbstreams::Client, arn: &str) -> dynamodb_stream::Result<()> {
    /// let store = FileStore::new("orders.checkpoint");
    /// let stream = ChangeStream::builder(client, arn)
    ///     .start(StartPosition::TrimHorizon) // only when nothing is saved yet
    ///     .resume_from_store(&store)
    ///     .await?
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// Whatever [`CheckpointStore::load`] returns: an unreadable, corrupt or foreign
    /// checkpoint is an error, never a silent start from scratch.
    pub async fn resume_from_store<S: CheckpointStore>(self, store: &S) -> Result<Self> {
        let checkpoint = store.load(self.stream_arn()).await?;
        Ok(self.resume_from(checkpoint))
    }

    /// End the stream once every shard has been read to its current end, instead of waiting
    /// for new records: for batch jobs and tests. An open shard counts as read to its end after
    /// three consecutive empty pages. Default is `false`.
    pub fn until_caught_up(mut self, yes: bool) -> Self {
        self.options.catch_up = yes;
        self
    }

    /// How long an idle shard waits after an empty page before asking again; consecutive empty
    /// pages double it up to [`max_poll_interval`](Self::max_poll_interval). A shard with a
    /// backlog is read back to back. Above zero, at most the maximum. Default is 250 ms
    /// (Lambda's 4 polls a second).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.options.poll_interval = interval;
        self
    }

    /// The longest wait between polls of an idle shard, at most an hour. Default is 2 s.
    pub fn max_poll_interval(mut self, interval: Duration) -> Self {
        self.options.max_poll_interval = interval;
        self
    }

    /// Records asked for per `GetRecords` call, 1 to 1000. Default is 1000.
    pub fn page_size(mut self, records: u32) -> Self {
        self.options.page_size = records;
        self
    }

    /// Pages each shard may read ahead of the consumer, at least 1. Default is 1. The whole
    /// stream's pages also stay within [`memory_budget`](Self::memory_budget).
    pub fn read_ahead(mut self, pages: usize) -> Self {
        self.options.read_ahead = pages;
        self
    }

    /// The bytes of `GetRecords` pages the stream may hold fetched and not yet delivered,
    /// calls in flight included: each call reserves 1 MiB (what a page may take) until its
    /// page arrives, then keeps what the page takes until its last event is handed out.
    /// Shards beyond it wait their turn, first come first served, so none starves; idle
    /// shards hold nothing between polls. At least 1 MiB. Default is 256 MiB.
    ///
    /// Not counted: events you still hold after they were handed out (on the default
    /// [`Decoding::Raw`](crate::Decoding::Raw), an event shares its page's bytes), and a
    /// page's excess over its 1 MiB reservation.
    pub fn memory_budget(mut self, bytes: usize) -> Self {
        self.options.memory_budget = bytes;
        self
    }

    /// Retries of throttling, 5xx and transport failures on top of the SDK's own attempts,
    /// with exponential backoff and jitter from `base` up to `max` per wait (`base` at most
    /// `max`, `max` at most an hour). After that the error ends the stream. Default is 10
    /// retries from 200 ms up to 10 s (about a minute in all).
    pub fn retries(mut self, retries: u32, base: Duration, max: Duration) -> Self {
        self.options.retry = RetryPolicy {
            max_retries: retries,
            base,
            max,
        };
        self
    }

    /// The least time between two `DescribeStream` calls of this process on this stream (the
    /// service allows 10 a second per stream, shared by all its consumers), at most an hour.
    /// Default is 200 ms.
    pub fn describe_interval(mut self, interval: Duration) -> Self {
        self.options.describe_interval = interval;
        self
    }

    /// What to do when a position (from a checkpoint, or after a long stall) is older than the
    /// stream's retention. Default is [`TrimPolicy::Fail`].
    pub fn on_trimmed(mut self, policy: TrimPolicy) -> Self {
        self.options.trim_policy = policy;
        self
    }

    /// Where shard readers run: on their own tokio tasks, so that parsing pages uses every
    /// worker thread, or inline on the consumer's task. Default is [`Readers::Auto`]: own
    /// tasks on a multi-threaded runtime.
    pub fn readers(mut self, readers: Readers) -> Self {
        self.options.readers = readers;
        self
    }

    /// Who parses `GetRecords` pages: the crate itself, in one pass with images decoded only
    /// when asked, falling back to the SDK page by page for any form it does not read exactly
    /// as the SDK does; or the SDK for every page. Events are the same either way. Default is
    /// [`Decoding::Raw`].
    pub fn decoding(mut self, decoding: Decoding) -> Self {
        self.options.decoding = decoding;
        self
    }

    /// Yields only the events `keep` returns `true` for, like Lambda's event filtering: the
    /// others never reach your code, yet count as read. Their positions are in the
    /// checkpoint of the next event yielded and in [`ChangeStream::checkpoint`], and a
    /// [`Committer`](crate::Committer) that has every yielded event acknowledged saves past
    /// dropped events that end the stream (or what of it has been read so far), so a
    /// filtered-out tail does not hold saves back. Called again, or with
    /// [`kinds`](Self::kinds), an event must pass every filter. `keep` runs on the stream's
    /// task, once per record: keep it cheap. Default is none.
    ///
    /// ```no_run
    /// # use dynamodb_stream::{Change, ChangeStream};
    /// # fn run(client: aws_sdk_dynamodbstreams::Client, arn: &str) -> dynamodb_stream::Result<()> {
    /// let stream = ChangeStream::builder(client, arn)
    ///     .filter(|change: &Change| change.raw_keys().contains_key("order_id"))
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn filter(mut self, keep: impl Fn(&Change) -> bool + Send + Sync + 'static) -> Self {
        self.filter = Some(Filter::and(self.filter.take(), keep));
        self
    }

    /// Yields only the events of these kinds: a [`filter`](Self::filter) on
    /// [`Change::kind`]. An empty list yields nothing.
    pub fn kinds(self, kinds: impl IntoIterator<Item = EventKind>) -> Self {
        let kinds: Vec<EventKind> = kinds.into_iter().collect();
        self.filter(move |change| kinds.contains(&change.kind()))
    }

    /// Shares the stream with every other process (and consumer) that uses the same lease
    /// table and group: this stream yields the events of the shards its process holds, and
    /// saving its checkpoints through the table (a [`Committer`](crate::Committer) over it)
    /// writes each shard's position there, fenced by the lease it was read under. The start
    /// position applies when the group first sees the stream; positions come from the table
    /// after that. Not combined with [`resume_from`](Self::resume_from) (import a checkpoint
    /// with [`LeaseTable::seed`](crate::lease::LeaseTable::seed)) nor with
    /// [`until_caught_up`](Self::until_caught_up). Feature `dynamodb-store`. Default is none.
    #[cfg(feature = "dynamodb-store")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dynamodb-store")))]
    pub fn lease(mut self, table: crate::lease::LeaseTable) -> Self {
        self.lease = Some(table);
        self
    }

    /// Checks the configuration and creates the stream. No request is sent until it is polled.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for a malformed stream ARN, a page size outside 1..=1000, a zero
    /// read-ahead or poll interval, a poll interval above the maximum, a retry base delay
    /// above its maximum, any wait above an hour, or a [`StartPosition::AtTimestamp`] before
    /// the Unix epoch, after the year 9999 or with a lease table;
    /// [`ErrorKind::CheckpointMismatch`] for a
    /// checkpoint of another stream.
    pub fn build(self) -> Result<ChangeStream> {
        validate_arn(&self.stream_arn)?;
        self.options.validate()?;
        #[cfg_attr(not(feature = "dynamodb-store"), allow(unused_variables))]
        let timestamp = validate_start(self.start)?;
        if let Some(cp) = self
            .checkpoint
            .as_ref()
            .filter(|cp| cp.stream_arn() != self.stream_arn)
        {
            return Err(Error::new(
                ErrorKind::CheckpointMismatch,
                format!(
                    "the checkpoint belongs to {} but the stream is {}",
                    cp.stream_arn(),
                    self.stream_arn
                ),
            ));
        }
        let stream_arn: Arc<str> = Arc::from(self.stream_arn.as_str());
        #[cfg(feature = "dynamodb-store")]
        if let Some(table) = self.lease {
            if self.checkpoint.is_some() {
                return Err(Error::new(
                    ErrorKind::Config,
                    "a stream shared through a lease table resumes from the table: resume_from does not apply (import a checkpoint with LeaseTable::seed)",
                ));
            }
            if timestamp.is_some() {
                return Err(Error::new(
                    ErrorKind::Config,
                    "a stream shared through a lease table starts at the trim horizon or at LATEST: StartPosition::AtTimestamp is not supported with a lease table",
                ));
            }
            let positions = Positions::new(stream_arn.clone(), imbl::HashMap::new(), None);
            let ctx = Arc::new(Context::new(self.client, stream_arn.clone(), self.options));
            let merge = Merge::leased(ctx.clone(), positions, table, self.start)?;
            return Ok(ChangeStream::new(merge, &ctx, self.filter));
        }
        let fresh_latest = self.checkpoint.is_none() && self.start == StartPosition::Latest;
        let positions = match &self.checkpoint {
            Some(cp) => Positions::new(stream_arn.clone(), cp.to_map(), cp.unlisted().cloned()),
            None => Positions::new(
                stream_arn.clone(),
                imbl::HashMap::new(),
                unlisted(self.start),
            ),
        };
        let ctx = Arc::new(Context::new(self.client, stream_arn.clone(), self.options));
        let merge = Merge::new(ctx.clone(), positions, fresh_latest);
        Ok(ChangeStream::new(merge, &ctx, self.filter))
    }
}

/// The position of every shard of a fresh consumer: none (the trim horizon), or "since" the
/// start instant. A `LATEST` start is anchored a little early for clock skew; a timestamp
/// start is read from the trim horizon, skipping what was created before it, like a `LATEST`
/// start being resumed (the checkpoint text is the same: `*=t<seconds>`).
fn unlisted(start: StartPosition) -> Option<ShardPosition> {
    let since = match start {
        StartPosition::TrimHorizon => return None,
        StartPosition::Latest => {
            epoch_secs(SystemTime::now()).saturating_sub(LATEST_CLOCK_ALLOWANCE_SECS)
        }
        StartPosition::AtTimestamp(t) => epoch_secs(t),
    };
    Some(ShardPosition::LatestSince(at_epoch_secs(since)))
}

/// `arn:<partition>:dynamodb:<region>:<account>:table/<name>/stream/<label>`
fn validate_arn(arn: &str) -> Result<()> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && !parts[1].is_empty()
        && parts[2] == "dynamodb"
        && parts[5]
            .strip_prefix("table/")
            .and_then(|rest| rest.split_once("/stream/"))
            .is_some_and(|(table, label)| !table.is_empty() && !label.is_empty());
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Config,
            format!(
                "{arn:?} is not a DynamoDB stream ARN (arn:aws:dynamodb:<region>:<account>:table/<table>/stream/<label>)"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_are_checked() {
        let good =
            "arn:aws:dynamodb:us-east-1:123456789012:table/Orders/stream/2026-11-21T19:03:46.123";
        assert!(validate_arn(good).is_ok());
        for bad in [
            "",
            "Orders",
            "arn:aws:dynamodb:us-east-1:123456789012:table/Orders",
            "arn:aws:kinesis:us-east-1:123456789012:table/Orders/stream/x",
            "arn:aws:dynamodb:us-east-1:123456789012:table//stream/x",
        ] {
            assert_eq!(
                validate_arn(bad).unwrap_err().kind(),
                ErrorKind::Config,
                "{bad}"
            );
        }
    }
}
