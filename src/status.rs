//! What a [`ChangeStream`](crate::ChangeStream) knows of its shards: [`Status`], from
//! [`ChangeStream::status`](crate::ChangeStream::status), and the [`Gap`]s it skipped over.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodbstreams::primitives::DateTime;

use crate::sequence::SequenceNumber;

/// A snapshot of every shard a stream knows, from
/// [`ChangeStream::status`](crate::ChangeStream::status).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Status {
    /// Every shard known to the consumer, ordered by id.
    pub shards: Vec<ShardStatus>,
    /// Records lost to retention and skipped over under
    /// [`TrimPolicy::SkipToTrimHorizon`](crate::TrimPolicy::SkipToTrimHorizon), oldest first.
    /// Always empty under the default policy, which fails instead.
    pub gaps: Vec<Gap>,
    /// For a stream that shares its shards through a lease table: what this process holds.
    pub lease: Option<LeaseStatus>,
    /// How the `GetRecords` pages read so far were decoded.
    pub pages: PageCounts,
    /// The memory budget and what is reserved of it now.
    pub memory: MemoryUse,
}

/// The stream's memory budget
/// ([`ChangeStreamBuilder::memory_budget`](crate::ChangeStreamBuilder::memory_budget)) and its
/// use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryUse {
    /// The budget, in bytes.
    pub budget: usize,
    /// Bytes reserved now: pages fetched and not yet delivered, and calls in flight (1 MiB
    /// each until their page arrives).
    pub reserved: usize,
}

/// How many `GetRecords` pages (with or without records) were decoded which way: see
/// [`Decoding`](crate::Decoding).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PageCounts {
    /// Parsed by the crate itself ([`Decoding::Raw`](crate::Decoding::Raw)).
    pub raw: u64,
    /// Decoded by the SDK because [`Decoding::Sdk`](crate::Decoding::Sdk) was chosen.
    pub sdk: u64,
    /// Decoded by the SDK although [`Decoding::Raw`](crate::Decoding::Raw) was chosen: the page
    /// was in a form the crate's parse does not read exactly as the SDK does (some emulators
    /// write timestamps as floats), or the SDK stopped handing over page bodies. A steady
    /// count here on the real service is worth a bug report.
    pub fallback: u64,
}

/// The counters behind [`PageCounts`], shared by a stream's readers.
#[derive(Debug, Default)]
pub(crate) struct PageCounters {
    raw: AtomicU64,
    sdk: AtomicU64,
    fallback: AtomicU64,
}

/// Which way one page was decoded.
#[derive(Clone, Copy, Debug)]
pub(crate) enum PageDecoding {
    Raw,
    Sdk,
    Fallback,
}

impl PageCounters {
    pub(crate) fn count(&self, how: PageDecoding) {
        let counter = match how {
            PageDecoding::Raw => &self.raw,
            PageDecoding::Sdk => &self.sdk,
            PageDecoding::Fallback => &self.fallback,
        };
        // Counts only: no other memory is published through them.
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> PageCounts {
        PageCounts {
            raw: self.raw.load(Ordering::Relaxed),
            sdk: self.sdk.load(Ordering::Relaxed),
            fallback: self.fallback.load(Ordering::Relaxed),
        }
    }
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

/// Where one shard is in its life, as the consumer sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShardState {
    /// Listed, waiting for its parent to finish.
    Waiting,
    /// Being read.
    Reading,
    /// Read to the end of its current records (catch-up mode only); it is still open.
    CaughtUp,
    /// Read to its end and fully delivered.
    Finished,
}

/// Records lost to the stream's 24-hour retention, reported when the consumer was told to
/// skip over trimmed data ([`TrimPolicy::SkipToTrimHorizon`](crate::TrimPolicy)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Gap {
    /// The shard that lost records.
    pub shard_id: String,
    /// The last sequence number read from the shard before the gap; `None` when the consumer
    /// had read nothing of it (everything before the trim horizon was lost).
    pub after: Option<SequenceNumber>,
}

/// The fencing token of the lease an event was read under: which shard, which epoch (it
/// grows with every change of holder), which process.
///
/// A sink that writes an event's effects elsewhere can refuse writes older than the newest
/// epoch it has seen for the shard: then a process that was paused past its lease and wakes
/// up cannot overwrite what the shard's next holder wrote.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaseToken {
    pub(crate) shard_id: String,
    pub(crate) epoch: u64,
    pub(crate) owner: String,
}

impl LeaseToken {
    /// The shard.
    pub fn shard_id(&self) -> &str {
        &self.shard_id
    }

    /// The lease's epoch: larger for every later holder of the shard.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The holder: `<worker id>#<incarnation>` (a restarted process is a new incarnation).
    pub fn owner(&self) -> &str {
        &self.owner
    }
}

/// What a process holds of a shared stream, from
/// [`ChangeStream::status`](crate::ChangeStream::status), for a stream that shares its shards through a lease
/// table (feature `dynamodb-store`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseStatus {
    /// This process's worker id.
    pub worker_id: String,
    /// The shards it holds now, ordered by id.
    pub held: Vec<String>,
    /// Shards it read to their end whose last position is not saved yet: their children
    /// (read by anyone) wait for that save.
    pub awaiting_save: Vec<String>,
    /// Shards it started holding: free ones, a stopped process's, or handed over to it.
    pub taken: u64,
    /// Shards it lost without handing them over: it was evicted (paused or cut off too
    /// long), or a save found another holder.
    pub lost: u64,
    /// Shards it handed over to another process on its request.
    pub handed_off: u64,
    /// Saves of a shard's position refused because the shard had moved on (counted, not
    /// errors: the next holder reads from the last saved position).
    pub refused_saves: u64,
}

/// Delivery counters of one shard, kept by the stream.
#[derive(Clone, Debug, Default)]
pub(crate) struct Delivered {
    pub(crate) records: u64,
    pub(crate) last_sequence_number: Option<SequenceNumber>,
    pub(crate) last_created: Option<DateTime>,
}

impl Delivered {
    /// Adds the counters of later deliveries.
    pub(crate) fn add(&mut self, later: &Delivered) {
        self.records += later.records;
        if later.last_sequence_number.is_some() {
            self.last_sequence_number = later.last_sequence_number.clone();
            self.last_created = later.last_created;
        }
    }

    /// The shard's entry in a [`Status`] taken at `now`.
    pub(crate) fn status(&self, shard_id: &str, state: ShardState, now: SystemTime) -> ShardStatus {
        ShardStatus {
            shard_id: shard_id.to_owned(),
            state,
            records: self.records,
            last_sequence_number: self.last_sequence_number.clone(),
            last_record_age: self
                .last_created
                .and_then(|t| SystemTime::try_from(t).ok())
                .map(|t| now.duration_since(t).unwrap_or(Duration::ZERO)),
        }
    }
}
