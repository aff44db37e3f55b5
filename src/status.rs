//! What a [`ChangeStream`](crate::ChangeStream) knows of its shards: [`Status`], from
//! [`ChangeStream::status`](crate::ChangeStream::status), and the [`Gap`]s it skipped over.

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
