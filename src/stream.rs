//! [`ChangeStream`]: the public stream, its builder and its status.

use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodbstreams::Client;
use futures::Stream;
use futures::stream::FusedStream;
use pin_project::pin_project;

use crate::checkpoint::{Checkpoint, Positions, ShardPosition};
use crate::discovery::Pacer;
use crate::error::{Error, ErrorKind, Result};
use crate::event::{Change, ChangeEvent, Gap};
use crate::lineage::ShardState;
use crate::merge::{Merge, StartPolicy, Update};
use crate::retry::RetryPolicy;
use crate::sequence::SequenceNumber;
use crate::shard::{Context, Page, PageEnd};

/// Where a consumer without a checkpoint starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StartPosition {
    /// The oldest records still in the stream (up to 24 hours back).
    TrimHorizon,
    /// Only records written after the consumer starts. Shards that appear later are still read
    /// from their beginning, so nothing written after the start is lost.
    #[default]
    Latest,
}

/// What to do when a position is older than the stream's 24-hour retention.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TrimPolicy {
    /// End the stream with [`ErrorKind::TrimmedData`], naming the shard and the last sequence
    /// number read: nothing is skipped without you deciding so.
    #[default]
    Fail,
    /// Go on from the shard's trim horizon. The lost range is still reported: on the first
    /// event after it ([`ChangeEvent::gap_before`]) and in [`Status::gaps`].
    SkipToTrimHorizon,
}

/// Where the shard readers run: the SDK's work per page (signing the request, and above all
/// parsing the response's JSON, most of the cost of an event) happens in them.
///
/// Order, read-ahead and memory are the same either way: a reader on its own task still reads
/// a page only when the stream asks for it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Readers {
    /// [`Spawned`](Self::Spawned) when the stream is polled on a multi-threaded tokio runtime,
    /// [`Inline`](Self::Inline) otherwise.
    #[default]
    Auto,
    /// Each shard on its own tokio task, so pages are parsed on the runtime's worker threads
    /// while the consumer handles events. Falls back to inline outside a tokio runtime.
    Spawned,
    /// Every shard polled by the stream itself, on the consumer's task: one thread does all
    /// the work (the cheaper choice on a current-thread runtime).
    Inline,
}

/// A DynamoDB stream as one ordered [`Stream`] of [`ChangeEvent`]s.
///
/// Built with [`ChangeStream::builder`]. See the [crate documentation](crate) for the ordering
/// and checkpoint guarantees.
///
/// # Cancel safety
/// Dropping a pending `next()` loses nothing: records are only taken out of the stream when an
/// event is returned.
#[must_use = "streams do nothing unless polled"]
#[pin_project]
pub struct ChangeStream {
    #[pin]
    merge: Merge,
    positions: Positions,
    page: Option<CurrentPage>,
    stats: HashMap<Arc<str>, ShardStats>,
    gaps: Vec<Gap>,
    stream_arn: Arc<str>,
    done: bool,
}

struct CurrentPage {
    /// Reported on the page's first event, then cleared.
    gap: Option<Arc<Gap>>,
    shard: Arc<str>,
    changes: std::vec::IntoIter<Change>,
    end: PageEnd,
    base: Arc<crate::checkpoint::Snapshot>,
    /// The position of this shard after the last event returned from the page.
    head: Option<ShardPosition>,
    /// Per-shard counters of this page, added to the totals once the page is done (not on
    /// every event: that would hash the shard id per event).
    delivered: ShardStats,
}

#[derive(Clone, Debug, Default)]
struct ShardStats {
    records: u64,
    last_sequence_number: Option<SequenceNumber>,
    last_created: Option<aws_sdk_dynamodbstreams::primitives::DateTime>,
}

impl ShardStats {
    /// Adds the counters of later deliveries.
    fn add(&mut self, later: &ShardStats) {
        self.records += later.records;
        if later.last_sequence_number.is_some() {
            self.last_sequence_number = later.last_sequence_number.clone();
            self.last_created = later.last_created;
        }
    }
}

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
            catch_up: false,
            poll_interval: Duration::from_millis(250),
            max_poll_interval: Duration::from_secs(2),
            page_size: 1000,
            read_ahead: 1,
            retry: RetryPolicy::default(),
            describe_interval: Duration::from_millis(200),
            trim_policy: TrimPolicy::default(),
            readers: Readers::default(),
        }
    }

    /// [`ChangeStream::builder`] with a client configured from the environment
    /// (`aws_config::load_defaults`: credentials, region, profiles).
    #[cfg(feature = "aws-config")]
    pub async fn from_env(stream_arn: impl Into<String>) -> ChangeStreamBuilder {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::builder(Client::new(&config), stream_arn)
    }

    /// The ARN of the stream being read.
    pub fn stream_arn(&self) -> &str {
        &self.stream_arn
    }

    /// The position after the last event returned (or the start, before any): save it at
    /// shutdown to resume exactly there.
    pub fn checkpoint(&mut self) -> Checkpoint {
        match &self.page {
            Some(CurrentPage {
                shard,
                base,
                head: Some(position),
                ..
            }) => Checkpoint::new(base.clone(), shard.clone(), position.clone()),
            _ => self.positions.checkpoint(),
        }
    }

    /// A snapshot of every known shard: its state, records delivered, last sequence number and
    /// how old its last delivered record is. Cheap: no I/O.
    pub fn status(&self) -> Status {
        let now = SystemTime::now();
        let shards = self
            .merge
            .states()
            .into_iter()
            .map(|(id, state)| {
                let mut stats = self.stats.get(&id).cloned().unwrap_or_default();
                if let Some(page) = self.page.as_ref().filter(|p| p.shard == id) {
                    stats.add(&page.delivered);
                }
                ShardStatus {
                    shard_id: id.to_string(),
                    state,
                    records: stats.records,
                    last_sequence_number: stats.last_sequence_number,
                    last_record_age: stats
                        .last_created
                        .and_then(|t| SystemTime::try_from(t).ok())
                        .map(|t| now.duration_since(t).unwrap_or(Duration::ZERO)),
                }
            })
            .collect();
        Status {
            shards,
            gaps: self.gaps.clone(),
        }
    }
}

impl fmt::Debug for ChangeStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeStream")
            .field("stream_arn", &self.stream_arn)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Stream for ChangeStream {
    type Item = Result<ChangeEvent>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        loop {
            if let Some(event) = next_event(this.page) {
                return Poll::Ready(Some(Ok(event)));
            }
            if let Some(page) = this.page.take() {
                let parent = this.merge.parent(&page.shard);
                commit(this.positions, this.stats, page, parent);
            }
            match this.merge.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(Update::Page(page)))) => {
                    if let Some(gap) = &page.gap {
                        this.gaps.push(gap.clone());
                    }
                    *this.page = Some(open_page(this.positions, page));
                }
                Poll::Ready(Some(Ok(Update::Gap(gap)))) => this.gaps.push(gap),
                Poll::Ready(Some(Ok(Update::Positions(updates)))) => {
                    for (shard, position) in updates {
                        match position {
                            Some(position) => this.positions.set(shard, position),
                            None => this.positions.remove(&shard),
                        }
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    *this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    *this.done = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl FusedStream for ChangeStream {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

fn open_page(positions: &mut Positions, page: Page) -> CurrentPage {
    CurrentPage {
        gap: page.gap.map(Arc::new),
        base: positions.snapshot(),
        shard: page.shard,
        changes: page.changes.into_iter(),
        end: page.end,
        head: None,
        delivered: ShardStats::default(),
    }
}

/// The next event of the current page, with its checkpoint: the page's base positions plus
/// this shard at this event. O(1): a few reference counts.
fn next_event(page: &mut Option<CurrentPage>) -> Option<ChangeEvent> {
    let page = page.as_mut()?;
    let change = page.changes.next()?;
    let position = if page.end == PageEnd::ShardEnd && page.changes.len() == 0 {
        ShardPosition::Finished
    } else {
        ShardPosition::After(change.sequence_number.clone())
    };
    page.head = Some(position.clone());
    page.delivered.records += 1;
    page.delivered.last_sequence_number = Some(change.sequence_number.clone());
    page.delivered.last_created = change.created;
    let checkpoint = Checkpoint::new(page.base.clone(), page.shard.clone(), position);
    Some(ChangeEvent::new(change, checkpoint, page.gap.take()))
}

/// Records a fully delivered page in the running positions and counters.
///
/// Once the shard has a position, its finished parent leaves the checkpoint: a child only
/// starts after its parent is finished, so the child's entry says it (see `on_first_listing`
/// in the merge). Checkpoints then hold the shards being read and the last finished ones,
/// not every shard of the last 24 hours.
fn commit(
    positions: &mut Positions,
    stats: &mut HashMap<Arc<str>, ShardStats>,
    page: CurrentPage,
    parent: Option<Arc<str>>,
) {
    if page.delivered.records > 0 {
        stats
            .entry(page.shard.clone())
            .or_default()
            .add(&page.delivered);
    }
    let position = match page.head {
        _ if page.end == PageEnd::ShardEnd => ShardPosition::Finished,
        Some(head) => head,
        None => return,
    };
    positions.set(page.shard, position);
    if let Some(parent) = parent {
        positions.forget_finished(&parent);
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
    catch_up: bool,
    poll_interval: Duration,
    max_poll_interval: Duration,
    page_size: u32,
    read_ahead: usize,
    retry: RetryPolicy,
    describe_interval: Duration,
    trim_policy: TrimPolicy,
    readers: Readers,
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

    /// End the stream once every shard has been read to its current end, instead of waiting
    /// for new records: for batch jobs and tests. An open shard counts as read to its end after
    /// three consecutive empty pages. Default is `false`.
    pub fn until_caught_up(mut self, yes: bool) -> Self {
        self.catch_up = yes;
        self
    }

    /// How long an idle shard waits after an empty page before asking again; consecutive empty
    /// pages double it up to [`max_poll_interval`](Self::max_poll_interval). A shard with a
    /// backlog is read back to back. Default is 250 ms (Lambda's 4 polls a second).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// The longest wait between polls of an idle shard. Default is 2 s.
    pub fn max_poll_interval(mut self, interval: Duration) -> Self {
        self.max_poll_interval = interval;
        self
    }

    /// Records asked for per `GetRecords` call, 1 to 1000. Default is 1000.
    pub fn page_size(mut self, records: u32) -> Self {
        self.page_size = records;
        self
    }

    /// Pages each shard may read ahead of the consumer, at least 1. Memory is bounded by
    /// shards × read-ahead × 1 MB (the service's page cap). Default is 1.
    pub fn read_ahead(mut self, pages: usize) -> Self {
        self.read_ahead = pages;
        self
    }

    /// Retries of throttling, 5xx and transport failures on top of the SDK's own attempts,
    /// with exponential backoff and jitter from `base` up to `max` per wait. After that the
    /// error ends the stream. Default is 10 retries from 200 ms up to 10 s (about a minute in
    /// all).
    pub fn retries(mut self, retries: u32, base: Duration, max: Duration) -> Self {
        self.retry = RetryPolicy {
            max_retries: retries,
            base,
            max,
        };
        self
    }

    /// The least time between two `DescribeStream` calls of this process on this stream (the
    /// service allows 10 a second per stream, shared by all its consumers). Default is 200 ms.
    pub fn describe_interval(mut self, interval: Duration) -> Self {
        self.describe_interval = interval;
        self
    }

    /// What to do when a position (from a checkpoint, or after a long stall) is older than the
    /// stream's retention. Default is [`TrimPolicy::Fail`].
    pub fn on_trimmed(mut self, policy: TrimPolicy) -> Self {
        self.trim_policy = policy;
        self
    }

    /// Where shard readers run: on their own tokio tasks, so that parsing pages uses every
    /// worker thread, or inline on the consumer's task. Default is [`Readers::Auto`]: own
    /// tasks on a multi-threaded runtime.
    pub fn readers(mut self, readers: Readers) -> Self {
        self.readers = readers;
        self
    }

    /// Checks the configuration and creates the stream. No request is sent until it is polled.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for a malformed stream ARN, a page size outside 1..=1000, a zero
    /// read-ahead or poll interval, or a poll interval above the maximum;
    /// [`ErrorKind::CheckpointMismatch`] for a checkpoint of another stream.
    pub fn build(self) -> Result<ChangeStream> {
        validate_arn(&self.stream_arn)?;
        let config = |why: String| Err(Error::new(ErrorKind::Config, why));
        if !(1..=1000).contains(&self.page_size) {
            return config(format!("page size {} is outside 1..=1000", self.page_size));
        }
        if self.read_ahead == 0 {
            return config("read-ahead must be at least one page".into());
        }
        if self.poll_interval.is_zero() || self.poll_interval > self.max_poll_interval {
            return config(format!(
                "poll interval {:?} must be above zero and at most the maximum {:?}",
                self.poll_interval, self.max_poll_interval
            ));
        }
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
        let resumed = self
            .checkpoint
            .as_ref()
            .map(Checkpoint::to_map)
            .unwrap_or_default();
        // A fresh LATEST start is anchored a little before now: records are stamped by the
        // service's clock, and a local clock running ahead must not make a resumed shard skip
        // records written after the start (re-delivering a few is the safe side).
        let latest_since = match (&self.checkpoint, self.start) {
            (None, StartPosition::Latest) => Some(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                    .saturating_sub(LATEST_CLOCK_ALLOWANCE_SECS),
            ),
            _ => None,
        };
        let unlisted = match &self.checkpoint {
            Some(cp) => cp.unlisted().cloned(),
            None => latest_since.map(|t| ShardPosition::LatestSince(at_epoch_secs(t))),
        };
        let ctx = Arc::new(Context {
            client: self.client,
            stream_arn: stream_arn.clone(),
            pacer: Pacer::shared(&stream_arn, self.describe_interval),
            retry: self.retry,
            page_size: i32::try_from(self.page_size).unwrap_or(1000),
            poll_interval: self.poll_interval,
            max_poll_interval: self.max_poll_interval,
            catch_up: self.catch_up.then_some(3),
            skip_trimmed: self.trim_policy == TrimPolicy::SkipToTrimHorizon,
            readers: self.readers,
        });
        let policy = StartPolicy {
            resumed: resumed.clone(),
            latest_since,
            unlisted_since: match &unlisted {
                Some(ShardPosition::LatestSince(t)) => Some(epoch_secs(*t)),
                _ => None,
            },
        };
        Ok(ChangeStream {
            merge: Merge::new(ctx, policy, self.read_ahead),
            positions: Positions::new(stream_arn.clone(), resumed, unlisted),
            page: None,
            stats: HashMap::new(),
            gaps: Vec::new(),
            stream_arn,
            done: false,
        })
    }
}

/// How far before the start a `LATEST` anchor is placed, for clock skew.
const LATEST_CLOCK_ALLOWANCE_SECS: i64 = 2;

fn at_epoch_secs(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

pub(crate) fn epoch_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
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

/// What a [`ChangeStream`] knows of its shards, from [`ChangeStream::status`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Status {
    /// Every shard known to the consumer, ordered by id.
    pub shards: Vec<ShardStatus>,
    /// Records lost to retention and skipped over under [`TrimPolicy::SkipToTrimHorizon`],
    /// oldest first. Always empty under the default policy, which fails instead.
    pub gaps: Vec<Gap>,
}

impl Status {
    /// Shards being read now.
    pub fn reading(&self) -> usize {
        self.count(ShardState::Reading)
    }

    /// Shards read to their end and delivered.
    pub fn finished(&self) -> usize {
        self.count(ShardState::Finished)
    }

    fn count(&self, state: ShardState) -> usize {
        self.shards.iter().filter(|s| s.state == state).count()
    }
}

/// One shard in a [`Status`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ShardStatus {
    /// The shard's id.
    pub shard_id: String,
    /// Where it is in its life.
    pub state: ShardState,
    /// Records delivered from it by this consumer.
    pub records: u64,
    /// The sequence number of the last record delivered from it.
    pub last_sequence_number: Option<SequenceNumber>,
    /// How long ago the last delivered record was written (from its approximate creation time):
    /// the consumer's lag on this shard while it has a backlog.
    pub last_record_age: Option<Duration>,
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
