//! Event filtering ([`ChangeStreamBuilder::filter`](crate::ChangeStreamBuilder::filter)) and
//! the positions past the events it drops.
//!
//! A dropped event is never yielded, so no acknowledgement can carry its position. The stream
//! folds dropped positions into the checkpoint of the next event it yields; when dropped
//! events are the last it handed out (a filtered-out tail), it publishes the checkpoint past
//! them in a cell shared with the checkpoints it yields, stamped with how many events it had
//! yielded. A [`Committer`](crate::Committer) whose last acknowledged checkpoint is the one of
//! that last yielded event (and so, acknowledging in order, every yielded event is processed)
//! may save the published checkpoint instead: nothing yielded and unacknowledged lies before it.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use crate::checkpoint::Checkpoint;
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
        let published = Published {
            yielded: self.yielded,
            version: self.published,
            checkpoint: past.with_mark(self.mark()),
        };
        *self.skips.lock() = Some(published);
    }

    fn mark(&self) -> Mark {
        Mark {
            skips: self.skips.clone(),
            yielded: self.yielded,
        }
    }
}

/// The last checkpoint published past dropped events.
#[derive(Debug, Default)]
pub(crate) struct Skips(Mutex<Option<Published>>);

impl Skips {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Published>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
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
        Some(published.checkpoint.clone())
    }
}
