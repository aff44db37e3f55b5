//! [`ChangeEvent`]: a change with the checkpoint that resumes the stream right after it.

use std::fmt;
use std::sync::Arc;

use super::Change;
use crate::checkpoint::Checkpoint;
use crate::status::{Gap, LeaseToken};

/// One change to the table, with the checkpoint that resumes the stream right after it: what
/// a [`ChangeStream`](crate::ChangeStream) yields.
///
/// Dereferences to its [`Change`] (kind, keys, images, typed access); adds the
/// [`checkpoint`](Self::checkpoint) and what was skipped before it
/// ([`gap_before`](Self::gap_before)).
#[derive(Clone)]
pub struct ChangeEvent {
    change: Change,
    checkpoint: Checkpoint,
    gap: Option<Arc<Gap>>,
    lease: Option<Arc<LeaseToken>>,
}

impl ChangeEvent {
    pub(crate) fn new(
        change: Change,
        checkpoint: Checkpoint,
        gap: Option<Arc<Gap>>,
        lease: Option<Arc<LeaseToken>>,
    ) -> Self {
        Self {
            change,
            checkpoint,
            gap,
            lease,
        }
    }

    /// The lease the event was read under, for a stream that shares its shards through a
    /// lease table (`None` otherwise): a sink that keeps the largest epoch it saw per shard
    /// and refuses writes of smaller ones cannot be overwritten by a process that lost the
    /// shard while it was paused.
    pub fn lease(&self) -> Option<&LeaseToken> {
        self.lease.as_deref()
    }

    /// The shard the event was read from. (A [`Change`] in general may not know its shard:
    /// [`Change::shard_id`] is an `Option`; an event of a stream always does.)
    pub fn shard_id(&self) -> &str {
        // Every page of a stream is read from one named shard.
        self.change.shard_id().unwrap_or_default()
    }

    /// The change itself.
    pub fn change(&self) -> &Change {
        &self.change
    }

    /// Records of this event's shard that were lost to retention just before this event
    /// (only with [`TrimPolicy::SkipToTrimHorizon`](crate::TrimPolicy); the default policy
    /// ends the stream with [`ErrorKind::TrimmedData`](crate::ErrorKind::TrimmedData) instead).
    pub fn gap_before(&self) -> Option<&Gap> {
        self.gap.as_deref()
    }

    /// The checkpoint that resumes the whole stream right after this event.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// Splits the event into its change and its checkpoint, for code that processes the one
    /// and acknowledges the other separately
    /// ([`Committer::ack_checkpoint`](crate::Committer::ack_checkpoint)).
    pub fn into_parts(self) -> (Change, Checkpoint) {
        (self.change, self.checkpoint)
    }

    /// The checkpoint alone, dropping the change.
    pub fn into_checkpoint(self) -> Checkpoint {
        self.checkpoint
    }
}

impl std::ops::Deref for ChangeEvent {
    type Target = Change;

    fn deref(&self) -> &Change {
        &self.change
    }
}

impl AsRef<Change> for ChangeEvent {
    fn as_ref(&self) -> &Change {
        &self.change
    }
}

impl From<ChangeEvent> for Change {
    fn from(event: ChangeEvent) -> Self {
        event.change
    }
}

impl fmt::Debug for ChangeEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The checkpoint holds every shard's position: too much for a debug line.
        f.debug_struct("ChangeEvent")
            .field("change", &self.change)
            .finish_non_exhaustive()
    }
}
