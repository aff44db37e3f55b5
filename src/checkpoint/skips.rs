//! Positions past the events a filter dropped.
//!
//! A dropped event is never yielded, so no acknowledgement can carry its position. The stream
//! folds dropped positions into the checkpoint of the next event it yields; when dropped
//! events are the last it handed out (a filtered-out tail), it publishes the checkpoint past
//! them in a cell shared with the checkpoints it yields, stamped with how many events it had
//! yielded. A [`Committer`](crate::Committer) whose last acknowledged checkpoint is the one of
//! that last yielded event (and so, acknowledging in order, every yielded event is processed)
//! may save the published checkpoint instead: nothing yielded and unacknowledged lies before it.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::Checkpoint;

/// The last checkpoint published past dropped events.
#[derive(Debug, Default)]
pub(crate) struct Skips(Mutex<Option<Published>>);

impl Skips {
    fn lock(&self) -> MutexGuard<'_, Option<Published>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `checkpoint` lies past every event of the `yielded` the stream yielded and the dropped
    /// ones after them; `version` grows with every publication. Stored without a mark (which
    /// would point back here: a cycle), given one when taken.
    pub(crate) fn publish(&self, yielded: u64, version: u64, checkpoint: Checkpoint) {
        *self.lock() = Some(Published {
            yielded,
            version,
            checkpoint,
        });
    }
}

#[derive(Clone, Debug)]
struct Published {
    /// Events the stream had yielded when it published this.
    yielded: u64,
    version: u64,
    checkpoint: Checkpoint,
}

/// What a yielded event's checkpoint carries: the stream's cell, and the event's number.
#[derive(Clone, Debug)]
pub(crate) struct Mark {
    skips: Arc<Skips>,
    yielded: u64,
}

impl Mark {
    pub(crate) fn new(skips: Arc<Skips>, yielded: u64) -> Self {
        Self { skips, yielded }
    }
}

/// The committer's side: the mark of the last acknowledged checkpoint, and which published
/// checkpoint it already took.
#[derive(Debug, Default)]
pub(crate) struct SkipWatch {
    mark: Option<Mark>,
    taken: u64,
}

impl SkipWatch {
    /// `checkpoint` was acknowledged.
    pub(crate) fn acked(&mut self, checkpoint: &Checkpoint) {
        self.mark = checkpoint.mark().cloned();
    }

    /// A checkpoint past dropped events, not taken before, published while the last
    /// acknowledged event was the last one yielded.
    pub(crate) fn take(&mut self) -> Option<Checkpoint> {
        let mark = self.mark.as_ref()?;
        let guard = mark.skips.lock();
        let published = guard
            .as_ref()
            .filter(|p| p.yielded == mark.yielded && p.version > self.taken)?;
        self.taken = published.version;
        Some(published.checkpoint.clone().with_mark(mark.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::testing::{ARN, seq};
    use crate::checkpoint::{Positions, ShardPosition};

    #[test]
    fn a_published_position_is_taken_once_and_only_after_the_last_yielded_event() {
        let mut positions = Positions::new(ARN.into(), imbl::HashMap::new(), None);
        let skips = Arc::new(Skips::default());
        let mut event =
            |n: u64| positions_checkpoint(&mut positions, n).with_mark(Mark::new(skips.clone(), n));
        let (first, second) = (event(1), event(2));
        let past = |n: u64| {
            Checkpoint::new(
                first.base.clone(),
                "s".into(),
                ShardPosition::After(seq("9")),
            )
            .with_mark(Mark::new(skips.clone(), n))
        };
        let mut watch = SkipWatch::default();
        assert!(watch.take().is_none(), "nothing acknowledged yet");
        skips.publish(2, 1, past(2));
        watch.acked(&first);
        assert!(
            watch.take().is_none(),
            "event 2 was yielded, not acknowledged"
        );
        watch.acked(&second);
        let taken = watch.take().expect("published past the last yielded event");
        assert_eq!(taken, past(2));
        assert!(taken.mark().is_some(), "marked, for the next publication");
        assert!(watch.take().is_none(), "taken once");
        skips.publish(2, 2, past(2));
        assert!(watch.take().is_some(), "a newer publication");
    }

    fn positions_checkpoint(positions: &mut Positions, n: u64) -> Checkpoint {
        positions.set("s".into(), ShardPosition::After(seq(&n.to_string())));
        positions.checkpoint()
    }
}
