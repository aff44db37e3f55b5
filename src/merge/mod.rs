//! The lineage-ordered merge of shard readers.
//!
//! Shards come from one of two sources: this process alone reads every listed shard, a child
//! only once the consumer has asked for the next page after its parent's final page, that is,
//! after every record of the parent was delivered (`alone`); or a lease table grants this
//! process some shards, a child only once its parent's end was saved, by whichever process
//! read it (`leased`). Either way the readers are polled together (`pool`), each at most
//! `read_ahead` pages ahead of the consumer.
//!
//! The merge also keeps the running positions: where each shard starts is looked up in them
//! (as the checkpoint being resumed left them, or as a lease grants), and the stream records
//! every delivered page in them.

mod alone;
#[cfg(feature = "dynamodb-store")]
mod leased;
mod listing;
mod pool;

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use futures::Stream;

use crate::api::Context;
use crate::checkpoint::{Checkpoint, Positions, ShardPosition, Snapshot};
use crate::error::Result;
use crate::shard::{Page, PageEnd};
use crate::status::{Gap, ShardState};

use alone::{Alone, Parts};
use pool::{Polled, Pool};

/// What the merge hands the stream.
#[derive(Debug)]
pub(crate) enum Update {
    Page(Page),
    /// Records lost to retention that no page will report (the whole shard aged out).
    Gap(Gap),
}

/// Where the merge's shards come from.
enum Source {
    Alone(Box<Alone>),
    #[cfg(feature = "dynamodb-store")]
    Leased(leased::Leased),
}

impl Source {
    /// Catch-up mode: `shard` is read to its current end.
    fn caught_up(&mut self, shard: &Arc<str>) {
        match self {
            Self::Alone(alone) => alone.lineage.caught_up(shard),
            #[cfg(feature = "dynamodb-store")]
            Self::Leased(_) => {}
        }
    }
}

pub(crate) struct Merge {
    ctx: Arc<Context>,
    /// Delivered positions, one entry per shard being read (or finished and not yet implied
    /// by a child): the only copy, from which checkpoints are cut and starts are looked up.
    positions: Positions,
    pool: Pool,
    gaps: VecDeque<Gap>,
    /// The shard whose final page was handed out last: finished on the next poll.
    delivered_end: Option<Arc<str>>,
    source: Source,
    /// The first listing is in: [`poll_first_listing`](Self::poll_first_listing) has nothing
    /// left to do.
    listed: bool,
    /// The last readers ended while the first listing was polled: for the next step.
    drained: bool,
    done: bool,
}

impl Merge {
    /// A merge over every shard of the stream.
    pub(crate) fn new(ctx: Arc<Context>, positions: Positions, fresh_latest: bool) -> Self {
        let source = Source::Alone(Box::new(Alone::new(ctx.clone(), fresh_latest)));
        Self::with_source(ctx, positions, source)
    }

    /// A merge over the shards a lease table grants.
    #[cfg(feature = "dynamodb-store")]
    pub(crate) fn leased(
        ctx: Arc<Context>,
        positions: Positions,
        table: crate::lease::LeaseTable,
        start: crate::config::StartPosition,
    ) -> Result<Self> {
        if ctx.options.catch_up {
            return Err(leased::refuse_catch_up());
        }
        let source = Source::Leased(leased::Leased::new(table, start));
        Ok(Self::with_source(ctx, positions, source))
    }

    fn with_source(ctx: Arc<Context>, positions: Positions, source: Source) -> Self {
        Self {
            ctx,
            positions,
            pool: Pool::new(),
            gaps: VecDeque::new(),
            delivered_end: None,
            source,
            listed: false,
            drained: false,
            done: false,
        }
    }

    /// Records that every record of `shard` up to `position` was delivered. Reading alone,
    /// once the shard has a position its finished parent leaves the positions: a child only
    /// starts after its parent finished, so the child's entry says it (and resuming infers
    /// it). A leased shard's finished position stays until it is saved. `silent_end`: the
    /// shard ended on a page without records, so no event carried its end.
    pub(crate) fn record(&mut self, shard: Arc<str>, position: ShardPosition, silent_end: bool) {
        let parent = match &mut self.source {
            Source::Alone(alone) => alone.lineage.parent(&shard).cloned(),
            #[cfg(feature = "dynamodb-store")]
            Source::Leased(leased) => {
                if leased.grant(&shard).is_none() {
                    // Not this process's shard (any more): no lease would fence the position.
                    tracing::debug!(shard = %shard, "a page of a shard no longer held: not recorded");
                    return;
                }
                if silent_end {
                    leased.ended_silently(shard.clone(), self.positions.get(&shard).cloned());
                }
                None
            }
        };
        #[cfg(not(feature = "dynamodb-store"))]
        let _ = silent_end;
        self.positions.set(shard, position);
        if let Some(parent) = parent {
            self.positions.forget_finished(&parent);
        }
    }

    /// While the first listing is still being read, takes in its pages (starting their
    /// shards) without taking a page: the stream calls this while it hands out a page, so that
    /// a slow consumer does not hold back the shards of the listing's later pages.
    pub(crate) fn poll_first_listing(&mut self, cx: &mut TaskContext<'_>) -> Result<()> {
        if self.listed {
            return Ok(());
        }
        let (source, parts) = self.parts();
        match source {
            Source::Alone(alone) if !alone.has_listed() => alone.poll_listing(cx, parts)?,
            _ => {
                self.listed = true;
                return Ok(());
            }
        }
        // Let the readers started so far read their first pages (bounded by the read-ahead
        // and the memory budget); the pages wait for the stream.
        let read_ahead = self.ctx.options.read_ahead;
        let Self { source, pool, .. } = self;
        match pool.poll(cx, read_ahead, |shard| source.caught_up(shard)) {
            Polled::Failed(e) => Err(e),
            Polled::Drained => {
                self.drained = true;
                Ok(())
            }
            Polled::Pending => Ok(()),
        }
    }

    /// The delivered positions, shared until the next change.
    pub(crate) fn snapshot(&mut self) -> Arc<Snapshot> {
        self.positions.snapshot()
    }

    /// The checkpoint of everything delivered so far.
    pub(crate) fn checkpoint(&mut self) -> Checkpoint {
        self.positions.checkpoint()
    }

    /// Records read from the service and not handed to the stream yet.
    pub(crate) fn read_ahead(&self) -> usize {
        self.pool.records_waiting()
    }

    /// Every known shard and its state.
    pub(crate) fn states(&self) -> Vec<(Arc<str>, ShardState)> {
        match &self.source {
            Source::Alone(alone) => alone.lineage.states(),
            #[cfg(feature = "dynamodb-store")]
            Source::Leased(leased) => leased.states(),
        }
    }

    /// The lease `shard` is read under, for a leased stream.
    #[cfg(feature = "dynamodb-store")]
    pub(crate) fn grant(&self, shard: &str) -> Option<Arc<crate::lease::Grant>> {
        match &self.source {
            Source::Leased(leased) => leased.grant(shard).cloned(),
            Source::Alone(_) => None,
        }
    }

    /// The stream's end of its lease table, for a leased stream that has started.
    #[cfg(feature = "dynamodb-store")]
    pub(crate) fn lessee(&self) -> Option<&crate::lease::Lessee> {
        match &self.source {
            Source::Leased(leased) => leased.lessee(),
            Source::Alone(_) => None,
        }
    }

    fn parts(&mut self) -> (&mut Source, Parts<'_>) {
        let parts = Parts {
            ctx: &self.ctx,
            positions: &mut self.positions,
            pool: &mut self.pool,
            gaps: &mut self.gaps,
        };
        (&mut self.source, parts)
    }

    fn on_finished(&mut self, shard: Arc<str>) {
        let (source, parts) = self.parts();
        match source {
            Source::Alone(alone) => alone.on_finished(parts, shard),
            #[cfg(feature = "dynamodb-store")]
            Source::Leased(leased) => leased.on_finished(shard),
        }
    }

    /// Takes in what the source has for the merge; `Ok(true)`: the source is done.
    fn poll_source(&mut self, cx: &mut TaskContext<'_>) -> Result<bool> {
        let (source, parts) = self.parts();
        match source {
            Source::Alone(alone) => alone.poll_listing(cx, parts).map(|()| false),
            #[cfg(feature = "dynamodb-store")]
            Source::Leased(leased) => leased.poll_events(cx, parts),
        }
    }

    fn take_page(&mut self) -> Option<Page> {
        let page = self.pool.take_page()?;
        if page.end == PageEnd::ShardEnd {
            self.delivered_end = Some(page.shard.clone());
        }
        Some(page)
    }

    /// Catch-up mode is over: nothing is read, listed or waiting to be delivered.
    fn caught_up(&self) -> bool {
        let listing_idle = match &self.source {
            Source::Alone(alone) => alone.is_idle(),
            #[cfg(feature = "dynamodb-store")]
            Source::Leased(_) => false,
        };
        listing_idle && self.pool.is_idle() && self.pool.is_empty() && self.delivered_end.is_none()
    }

    fn poll_step(&mut self, cx: &mut TaskContext<'_>) -> Poll<Option<Result<Update>>> {
        if let Some(shard) = self.delivered_end.take() {
            self.on_finished(shard);
        }
        loop {
            if self.poll_source(cx)? {
                return Poll::Ready(None);
            }
            let read_ahead = self.ctx.options.read_ahead;
            let Self { source, pool, .. } = self;
            let polled = pool.poll(cx, read_ahead, |shard| source.caught_up(shard));
            let drained = match polled {
                Polled::Failed(e) => return Poll::Ready(Some(Err(e))),
                Polled::Drained => true,
                Polled::Pending => std::mem::take(&mut self.drained),
            };
            if let Some(gap) = self.gaps.pop_front() {
                return Poll::Ready(Some(Ok(Update::Gap(gap))));
            }
            if let Some(page) = self.take_page() {
                return Poll::Ready(Some(Ok(Update::Page(page))));
            }
            if self.ctx.options.catch_up && self.caught_up() {
                return Poll::Ready(None);
            }
            // The last readers just ended without a page (caught up): a look-up held back
            // while they were busy can start now.
            if drained && matches!(&self.source, Source::Alone(a) if a.is_deferred()) {
                continue;
            }
            return Poll::Pending;
        }
    }
}

impl Stream for Merge {
    type Item = Result<Update>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let next = this.poll_step(cx);
        if matches!(next, Poll::Ready(None | Some(Err(_)))) {
            this.done = true;
        }
        next
    }
}
