//! The simulator's public data types: records to append, scripted faults, introspection.

use super::Item;
use std::fmt;

/// The kind of change a stream record describes (its `eventName`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// `INSERT`: a new item.
    Insert,
    /// `MODIFY`: an existing item was overwritten (even with identical contents).
    Modify,
    /// `REMOVE`: an item was deleted.
    Remove,
}

impl RecordKind {
    /// The wire form, as in `eventName`.
    pub(crate) fn event_name(self) -> &'static str {
        match self {
            RecordKind::Insert => "INSERT",
            RecordKind::Modify => "MODIFY",
            RecordKind::Remove => "REMOVE",
        }
    }
}

/// A raw record for [`Simulator::append`](super::Simulator::append), bypassing the table.
///
/// The images are filtered by the stream's view type as the service would; nothing else is
/// checked, so a test can append records the table layer would never produce.
#[derive(Clone, Debug, PartialEq)]
pub struct SimRecord {
    /// The change kind.
    pub kind: RecordKind,
    /// The item's key attributes (`dynamodb.Keys`).
    pub keys: Item,
    /// The item after the change (`dynamodb.NewImage`).
    pub new_image: Option<Item>,
    /// The item before the change (`dynamodb.OldImage`).
    pub old_image: Option<Item>,
    /// Whether the change was a TTL expiry: sets `userIdentity` to the DynamoDB service
    /// principal.
    pub ttl: bool,
}

impl SimRecord {
    /// A record of `kind` for `keys`, with no images and no TTL identity.
    pub fn new(kind: RecordKind, keys: Item) -> Self {
        SimRecord {
            kind,
            keys,
            new_image: None,
            old_image: None,
            ttl: false,
        }
    }

    /// Sets the new image.
    #[must_use]
    pub fn with_new_image(mut self, image: Item) -> Self {
        self.new_image = Some(image);
        self
    }

    /// Sets the old image.
    #[must_use]
    pub fn with_old_image(mut self, image: Item) -> Self {
        self.old_image = Some(image);
        self
    }

    /// Marks the record as a TTL deletion.
    #[must_use]
    pub fn with_ttl(mut self) -> Self {
        self.ttl = true;
        self
    }
}

/// Where a write landed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Appended {
    /// The shard that holds the record.
    pub shard_id: String,
    /// The record's sequence number.
    pub sequence_number: String,
}

/// An API operation, for scripting faults with [`Simulator::inject`](super::Simulator::inject).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `DescribeStream`.
    DescribeStream,
    /// `GetShardIterator`.
    GetShardIterator,
    /// `GetRecords`.
    GetRecords,
    /// `ListStreams`.
    ListStreams,
    /// Whichever operation is called next.
    Any,
}

impl Operation {
    /// Whether a fault scripted for `self` applies to a call of `called`.
    pub(crate) fn matches(self, called: Operation) -> bool {
        self == Operation::Any || self == called
    }
}

/// A scripted service error, see [`Simulator::inject`](super::Simulator::inject).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// HTTP 400 `LimitExceededException` (the SDK retries it as throttling).
    LimitExceeded,
    /// HTTP 500 `InternalServerError` (the SDK retries it).
    InternalServerError,
    /// HTTP 400 `ResourceNotFoundException`.
    ResourceNotFound,
    /// HTTP 400 `ExpiredIteratorException`.
    ExpiredIterator,
    /// HTTP 400 `TrimmedDataAccessException`.
    TrimmedDataAccess,
    /// HTTP 400 `ValidationException` (not modelled by the SDK: an `Unhandled` error).
    Validation,
}

/// Calls the simulator has served, see [`Simulator::calls`](super::Simulator::calls).
///
/// Every HTTP request counts, including each SDK retry and each call that failed.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallCounts {
    /// `DescribeStream` calls.
    pub describe_stream: u64,
    /// `GetShardIterator` calls.
    pub get_shard_iterator: u64,
    /// `GetRecords` calls.
    pub get_records: u64,
    /// `ListStreams` calls.
    pub list_streams: u64,
    /// All calls, including unknown operations.
    pub total: u64,
    /// Calls answered with an error (injected or not).
    pub errors: u64,
}

/// A snapshot of one shard, from [`Simulator::shards`](super::Simulator::shards).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimShard {
    /// `ShardId`.
    pub shard_id: String,
    /// `ParentShardId`: may name a shard that has aged out.
    pub parent_shard_id: Option<String>,
    /// Whether the shard still accepts records (no `EndingSequenceNumber`).
    pub open: bool,
    /// Whether `DescribeStream` lists it now (not hidden by a delay, not aged out).
    pub visible: bool,
    /// Whether [`Simulator::age_out`](super::Simulator::age_out) removed it.
    pub aged_out: bool,
    /// Records still readable (not trimmed).
    pub records: usize,
    /// Records trimmed away.
    pub trimmed: u64,
    /// `StartingSequenceNumber` as listed now.
    pub starting_sequence_number: String,
    /// `EndingSequenceNumber`, once closed.
    pub ending_sequence_number: Option<String>,
    /// Sequence number of the first readable record.
    pub first_sequence_number: Option<String>,
    /// Sequence number of the last record ever appended.
    pub last_sequence_number: Option<String>,
    /// The inclusive range of 64-bit key hashes routed to it while open, if any.
    pub hash_range: Option<(u64, u64)>,
}

/// Why a raw [`Simulator::append`](super::Simulator::append) failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimError {
    kind: SimErrorKind,
    shard_id: String,
}

/// The kind of a [`SimError`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SimErrorKind {
    /// No shard has that id.
    UnknownShard,
    /// The shard is closed and takes no more records.
    ShardClosed,
}

impl SimError {
    pub(crate) fn new(kind: SimErrorKind, shard_id: &str) -> Self {
        SimError {
            kind,
            shard_id: shard_id.to_owned(),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> SimErrorKind {
        self.kind
    }

    /// The shard the call named.
    pub fn shard_id(&self) -> &str {
        &self.shard_id
    }
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            SimErrorKind::UnknownShard => write!(f, "no shard {}", self.shard_id),
            SimErrorKind::ShardClosed => write!(f, "shard {} is closed", self.shard_id),
        }
    }
}

impl std::error::Error for SimError {}
