//! Event filtering ([`ChangeStreamBuilder::filter`](crate::ChangeStreamBuilder::filter)), and
//! the stream's side of publishing positions past the events it drops (see
//! `checkpoint::skips` for why and for the committer's side).

use std::fmt;
use std::sync::Arc;

use crate::checkpoint::{Checkpoint, Mark, Skips};
use crate::event::Change;

type Predicate = dyn Fn(&Change) -> bool + Send + Sync;

/// The events a stream yields: those every predicate keeps.
#[derive(Clone)]
pub(crate) struct Filter(Arc<Predicate>);

impl Filter {
    pub(crate) fn new(keep: impl Fn(&Change) -> bool + Send + Sync + 'static) -> Self {
        Self(Arc::new(keep))
    }

    /// The events both `self` (if any) and `keep` keep.
    pub(crate) fn and(
        this: Option<Self>,
        keep: impl Fn(&Change) -> bool + Send + Sync + 'static,
    ) -> Self {
        match this {
            None => Self::new(keep),
            Some(Self(first)) => Self::new(move |change| first(change) && keep(change)),
        }
    }

    pub(crate) fn keeps(&self, change: &Change) -> bool {
        (self.0)(change)
    }
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Filter")
    }
}

/// The stream's side: its filter, and where it publishes positions past dropped events.
#[derive(Debug)]
pub(crate) struct Filtering {
    filter: Filter,
    skips: Arc<Skips>,
    /// Events yielded so far.
    yielded: u64,
    /// Checkpoints published so far.
    published: u64,
}

impl Filtering {
    pub(crate) fn new(filter: Filter) -> Self {
        Self {
            filter,
            skips: Arc::default(),
            yielded: 0,
            published: 0,
        }
    }

    pub(crate) fn keeps(&self, change: &Change) -> bool {
        self.filter.keeps(change)
    }

    /// Counts an event being yielded, and marks its checkpoint with the count.
    pub(crate) fn yielding(&mut self, checkpoint: Checkpoint) -> Checkpoint {
        self.yielded += 1;
        checkpoint.with_mark(self.mark())
    }

    /// `past` lies after every event yielded so far and the dropped ones after them.
    pub(crate) fn publish(&mut self, past: Checkpoint) {
        self.published += 1;
        self.skips.publish(self.yielded, self.published, past);
    }

    fn mark(&self) -> Mark {
        Mark::new(self.skips.clone(), self.yielded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Positions;

    #[test]
    fn a_published_position_does_not_keep_the_cell_alive() {
        let arn = "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/l";
        let mut positions = Positions::new(arn.into(), imbl::HashMap::new(), None);
        let mut filtering = Filtering::new(Filter::new(|_| true));
        let weak = Arc::downgrade(&filtering.skips);
        let yielded = filtering.yielding(positions.checkpoint());
        filtering.publish(positions.checkpoint());
        drop((filtering, yielded));
        assert!(weak.upgrade().is_none(), "a reference cycle");
    }
}
