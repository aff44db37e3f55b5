//! Checkpoint tokens: the whole stream's position as of one event.
//!
//! - this file: [`Checkpoint`], [`ShardPosition`], and the shared snapshot behind them;
//! - `text`: the checksummed text form (also the serde form);
//! - `positions`: the consumer's running positions, from which checkpoints are cut;
//! - `resume`: what a checkpoint means for the shards listed when a consumer starts.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use crate::sequence::SequenceNumber;

mod positions;
pub(crate) mod resume;
mod skips;
mod text;

#[cfg(test)]
mod testing {
    use crate::sequence::SequenceNumber;

    pub(super) const ARN: &str =
        "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/2026-11-21T00:00:00.000";

    pub(super) fn seq(digits: &str) -> SequenceNumber {
        SequenceNumber::new(digits).unwrap()
    }
}

pub(crate) use positions::Positions;
pub(crate) use skips::{Mark, SkipWatch, Skips};

/// Where one shard stands in a [`Checkpoint`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShardPosition {
    /// Every record up to and including this sequence number was delivered.
    After(SequenceNumber),
    /// The shard was started at `LATEST` at this instant (whole seconds), or the consumer at
    /// [`StartPosition::AtTimestamp`](crate::StartPosition::AtTimestamp) this instant, and it
    /// has delivered nothing since. On resume it is read from `TRIM_HORIZON`, skipping records
    /// created before the instant: nothing written after the original start is lost.
    LatestSince(SystemTime),
    /// The shard was read to its end.
    Finished,
}

/// The stream's position as of one event: every shard's position, finished shards included.
///
/// Every [`ChangeEvent`](crate::ChangeEvent) carries one. Restarting a
/// [`ChangeStream`](crate::ChangeStream) from the checkpoint of event *N* resumes exactly after
/// *N* in every shard, so saving any event's checkpoint, after processing it, is enough:
/// nothing before it is delivered again, nothing after it is lost.
///
/// A checkpoint is cheap to clone (reference counts: events share the bulk of it) and has a
/// compact, checksummed text form through [`Display`](fmt::Display) and [`FromStr`](std::str::FromStr), which is
/// also its serde form:
///
/// ```text
/// ddbs1;<stream ARN>;*=t<epoch seconds>;<shard>=s<sequence number>;<shard>=f;c<crc32>
/// ```
/// (`s`: read up to that record, `f`: finished; `*=t`: the consumer started at `LATEST` or at
/// a timestamp at that time, which holds for every shard not listed; a stream that shares its shards through
/// a lease table lists only the shards it holds, each with its lease epoch: `=s<seq>@<epoch>`).
///
/// The text never holds whitespace, quotes, backslashes or control characters (names that
/// contain them are percent-escaped), so it goes into JSON, a header or a command line as it
/// is. Writing it costs one copy of the text its page's events share, plus the event's own
/// shard: O(shards) bytes, but no sorting or escaping per event.
#[derive(Clone)]
pub struct Checkpoint {
    base: Arc<Snapshot>,
    head: Option<(Arc<str>, ShardPosition)>,
    /// For the events of a filtering stream: where the stream publishes positions past the
    /// events it drops (not part of the position: equality, text and serde ignore it).
    mark: Option<Mark>,
}

/// The positions of all shards at one moment, shared by the checkpoints of many events.
#[derive(Debug)]
pub(crate) struct Snapshot {
    stream_arn: Arc<str>,
    positions: imbl::HashMap<Arc<str>, ShardPosition>,
    /// The position of every shard not in `positions`: `LatestSince` for a consumer that
    /// started at `LATEST`, `None` (the trim horizon) otherwise.
    unlisted: Option<ShardPosition>,
    /// The lease epoch each shard was read under, for a stream that shares its shards through
    /// a lease table (empty otherwise): every save of a position is fenced by it.
    epochs: imbl::HashMap<Arc<str>, u64>,
    /// The text form of `positions` (without checksum), made once when a checkpoint is first
    /// written out: the events of one page share the snapshot, and each splices in only its
    /// own shard.
    text: OnceLock<text::Rendered>,
}

impl Snapshot {
    fn new(
        stream_arn: Arc<str>,
        positions: imbl::HashMap<Arc<str>, ShardPosition>,
        unlisted: Option<ShardPosition>,
        epochs: imbl::HashMap<Arc<str>, u64>,
    ) -> Self {
        Self {
            stream_arn,
            positions,
            unlisted,
            epochs,
            text: OnceLock::new(),
        }
    }
}

impl Checkpoint {
    pub(crate) fn new(base: Arc<Snapshot>, shard: Arc<str>, position: ShardPosition) -> Self {
        Self {
            base,
            head: Some((shard, position)),
            mark: None,
        }
    }

    pub(crate) fn with_mark(mut self, mark: Mark) -> Self {
        self.mark = Some(mark);
        self
    }

    pub(crate) fn mark(&self) -> Option<&Mark> {
        self.mark.as_ref()
    }

    /// The ARN of the stream this checkpoint belongs to.
    pub fn stream_arn(&self) -> &str {
        &self.base.stream_arn
    }

    /// The position of one shard. A shard the checkpoint does not list has either delivered
    /// nothing yet (for a consumer that started at `LATEST` its position is
    /// [`ShardPosition::LatestSince`] the start, otherwise `None`: read from `TRIM_HORIZON`),
    /// or is a finished ancestor of a listed shard: a finished shard is left out once one of
    /// its children has a position, and resuming infers it from the stream's lineage.
    pub fn position(&self, shard_id: &str) -> Option<&ShardPosition> {
        match &self.head {
            Some((id, pos)) if &**id == shard_id => Some(pos),
            _ => self
                .base
                .positions
                .get(shard_id)
                .or(self.base.unlisted.as_ref()),
        }
    }

    /// The position of the shards [`positions`](Self::positions) does not list.
    pub(crate) fn unlisted(&self) -> Option<&ShardPosition> {
        self.base.unlisted.as_ref()
    }

    /// The lease epoch `shard_id` was read under, for a stream that shares its shards through
    /// a lease table; `None` otherwise.
    pub fn epoch(&self, shard_id: &str) -> Option<u64> {
        self.base.epochs.get(shard_id).copied()
    }

    /// The position of every shard the checkpoint lists, ordered by shard id (see
    /// [`position`](Self::position) for the others).
    pub fn positions(&self) -> BTreeMap<&str, &ShardPosition> {
        let mut all: BTreeMap<&str, &ShardPosition> = self
            .base
            .positions
            .iter()
            .map(|(id, pos)| (&**id, pos))
            .collect();
        if let Some((id, pos)) = &self.head {
            all.insert(id, pos);
        }
        all
    }

    /// Whether this is the checkpoint of a shard's last event.
    pub(crate) fn head_finished(&self) -> bool {
        matches!(self.head, Some((_, ShardPosition::Finished)))
    }

    pub(crate) fn to_map(&self) -> imbl::HashMap<Arc<str>, ShardPosition> {
        let mut map = self.base.positions.clone();
        if let Some((id, pos)) = &self.head {
            map.insert(id.clone(), pos.clone());
        }
        map
    }
}

impl PartialEq for Checkpoint {
    fn eq(&self, other: &Self) -> bool {
        self.stream_arn() == other.stream_arn()
            && self.unlisted() == other.unlisted()
            && self.positions() == other.positions()
            && self.base.epochs == other.base.epochs
    }
}

impl Eq for Checkpoint {}

impl fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkpoint")
            .field("stream_arn", &self.stream_arn())
            .field("unlisted", &self.unlisted())
            .field("positions", &self.positions())
            .finish()
    }
}

impl serde::Serialize for Checkpoint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Checkpoint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
