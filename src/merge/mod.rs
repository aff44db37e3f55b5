//! The lineage-ordered merge of shard readers.
//!
//! Ready shards are read concurrently; each may run at most `read_ahead` pages ahead of the
//! consumer, so a slow consumer applies backpressure and memory stays bounded. Pages are handed
//! out in the order they arrive, so no shard starves and no live shard waits on an idle one.
//! A shard's children start only once the consumer has asked for the next page after the
//! parent's final page: that is, after every record of the parent was delivered.
//!
//! The merge also keeps the running positions: where each shard starts is looked up in them
//! (as the checkpoint being resumed left them, reconciled with the first listing by
//! [`reconcile`]), and the stream records every delivered page in them.

mod listing;

use std::collections::{HashMap, HashSet, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use futures::Stream;
use futures::stream::{FuturesUnordered, StreamExt as _, StreamFuture};

use crate::api::Context;
use crate::checkpoint::resume::{Resume, reconcile};
use crate::checkpoint::{Checkpoint, Positions, ShardPosition, Snapshot};
use crate::config::Readers;
use crate::error::Result;
use crate::lineage::{Lineage, ShardInfo};
use crate::shard::{Page, PageEnd, ShardReader, on_task, read_shard};
use crate::status::{Gap, ShardState};

use listing::{Discovered, Listing};

/// What the merge hands the stream.
#[derive(Debug)]
pub(crate) enum Update {
    Page(Page),
    /// Records lost to retention that no page will report (the whole shard aged out).
    Gap(Gap),
}

pub(crate) struct Merge {
    ctx: Arc<Context>,
    lineage: Lineage,
    /// Delivered positions, one entry per shard being read (or finished and not yet implied
    /// by a child): the only copy, from which checkpoints are cut and starts are looked up.
    positions: Positions,
    /// No checkpoint, start at `LATEST`.
    fresh_latest: bool,
    /// What the first listing made of the start: which shards need no reading, which start at
    /// `LATEST`.
    resume: Resume,
    readers: FuturesUnordered<StreamFuture<ShardReader>>,
    parked: HashMap<Arc<str>, ShardReader>,
    buffered: HashMap<Arc<str>, usize>,
    ready: VecDeque<Page>,
    gaps: VecDeque<Gap>,
    /// The shard whose final page was handed out last: finished on the next poll.
    delivered_end: Option<Arc<str>>,
    listing: Listing,
    /// The runtime that readers are spawned on, once decided (`None`: read inline).
    runtime: Option<Option<tokio::runtime::Handle>>,
    done: bool,
}

impl Merge {
    pub(crate) fn new(ctx: Arc<Context>, positions: Positions, fresh_latest: bool) -> Self {
        Self {
            listing: Listing::new(ctx.clone()),
            ctx,
            lineage: Lineage::default(),
            positions,
            fresh_latest,
            resume: Resume::default(),
            readers: FuturesUnordered::new(),
            parked: HashMap::new(),
            buffered: HashMap::new(),
            ready: VecDeque::new(),
            gaps: VecDeque::new(),
            delivered_end: None,
            runtime: None,
            done: false,
        }
    }

    /// Records that every record of `shard` up to `position` was delivered. Once the shard has
    /// a position, its finished parent leaves the positions: a child only starts after its
    /// parent finished, so the child's entry says it (and resuming infers it).
    pub(crate) fn record(&mut self, shard: Arc<str>, position: ShardPosition) {
        let parent = self.lineage.parent(&shard).cloned();
        self.positions.set(shard, position);
        if let Some(parent) = parent {
            self.positions.forget_finished(&parent);
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

    /// Every known shard and its state.
    pub(crate) fn states(&self) -> Vec<(Arc<str>, ShardState)> {
        self.lineage.states()
    }

    fn start(&mut self, ready: Vec<Arc<str>>) {
        for id in ready {
            let start = self.resume.start_of(&id, self.positions.position(&id));
            let mut reader = read_shard(self.ctx.clone(), id, start);
            if let Some(runtime) = self.spawn_on() {
                reader = on_task(reader, runtime);
            }
            self.readers.push(reader.into_future());
        }
    }

    /// The runtime to run readers on, decided when the first shard starts (while polled).
    fn spawn_on(&mut self) -> Option<&tokio::runtime::Handle> {
        let readers = self.ctx.options.readers;
        self.runtime
            .get_or_insert_with(|| {
                let runtime = tokio::runtime::Handle::try_current().ok()?;
                let spawn = match readers {
                    Readers::Spawned => true,
                    Readers::Inline => false,
                    _ => runtime.runtime_flavor() != tokio::runtime::RuntimeFlavor::CurrentThread,
                };
                spawn.then_some(runtime)
            })
            .as_ref()
    }

    fn on_listing(&mut self, shards: Vec<ShardInfo>, full: bool, first: bool) -> Result<()> {
        if first {
            let mut resume = reconcile(
                &self.positions,
                &shards,
                self.fresh_latest,
                self.ctx.options.skip_trimmed(),
            )?;
            for (id, edit) in resume.edits.drain(..) {
                self.positions.edit(id, edit);
            }
            self.gaps.extend(resume.gaps.drain(..));
            self.resume = resume;
        }
        let done = &self.resume.done;
        let ready = self.lineage.observe(&shards, |s| done.contains(&s.id));
        if !ready.is_empty() {
            tracing::info!(shards = ready.len(), "shards ready");
        }
        self.start(ready);
        self.listing.children_found(&self.lineage);
        if full && !first {
            let listed: HashSet<Arc<str>> = shards.iter().map(|s| s.id.clone()).collect();
            let gone = self.lineage.prune(&listed);
            if !gone.is_empty() {
                tracing::debug!(
                    shards = gone.len(),
                    "finished shards aged out of the stream"
                );
            }
            for id in gone {
                self.positions.remove(&id);
            }
        }
        Ok(())
    }

    fn on_finished(&mut self, shard: Arc<str>) {
        let ready = self.lineage.finish(&shard);
        if self.lineage.has_children(&shard) {
            self.start(ready);
        } else {
            self.listing.await_children(shard);
        }
    }

    fn on_page(&mut self, page: Page, reader: ShardReader) {
        match page.end {
            PageEnd::CaughtUp => {
                self.lineage.caught_up(&page.shard);
                return;
            }
            PageEnd::ShardEnd => {}
            PageEnd::More => {
                let n = self.buffered.get(&page.shard).copied().unwrap_or(0) + 1;
                if n < self.ctx.options.read_ahead {
                    self.readers.push(reader.into_future());
                } else {
                    self.parked.insert(page.shard.clone(), reader);
                }
            }
        }
        *self.buffered.entry(page.shard.clone()).or_insert(0) += 1;
        self.ready.push_back(page);
    }

    fn take_page(&mut self) -> Option<Page> {
        let page = self.ready.pop_front()?;
        if let Some(n) = self.buffered.get_mut(&page.shard) {
            *n -= 1;
            if *n == 0 {
                self.buffered.remove(&page.shard);
            }
        }
        if let Some(reader) = self.parked.remove(&page.shard) {
            self.readers.push(reader.into_future());
        }
        if page.end == PageEnd::ShardEnd {
            self.delivered_end = Some(page.shard.clone());
        }
        Some(page)
    }

    fn readers_idle(&self) -> bool {
        self.readers.is_empty() && self.parked.is_empty()
    }

    fn is_idle(&self) -> bool {
        self.listing.is_idle()
            && self.readers_idle()
            && self.ready.is_empty()
            && self.delivered_end.is_none()
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

impl Merge {
    fn poll_step(&mut self, cx: &mut TaskContext<'_>) -> Poll<Option<Result<Update>>> {
        if let Some(shard) = self.delivered_end.take() {
            self.on_finished(shard);
        }
        loop {
            self.poll_listing(cx)?;
            let had_readers = !self.readers.is_empty();
            while let Poll::Ready(Some((item, reader))) = self.readers.poll_next_unpin(cx) {
                match item {
                    Some(Ok(page)) => self.on_page(page, reader),
                    Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                    None => {}
                }
            }
            if let Some(gap) = self.gaps.pop_front() {
                return Poll::Ready(Some(Ok(Update::Gap(gap))));
            }
            if let Some(page) = self.take_page() {
                return Poll::Ready(Some(Ok(Update::Page(page))));
            }
            if self.ctx.options.catch_up && self.is_idle() {
                return Poll::Ready(None);
            }
            // The last readers just ended without a page (caught up): a look-up held back
            // while they were busy can start now.
            if had_readers && self.readers_idle() && self.listing.is_deferred() {
                continue;
            }
            return Poll::Pending;
        }
    }

    /// Takes in the results of due listings, until one is pending or none is due.
    fn poll_listing(&mut self, cx: &mut TaskContext<'_>) -> Result<()> {
        loop {
            let readers_busy = self.ctx.options.catch_up && !self.readers_idle();
            let Poll::Ready(result) = self.listing.poll(cx, readers_busy) else {
                return Ok(());
            };
            match result? {
                Discovered::Full { shards, first } => self.on_listing(shards, true, first)?,
                Discovered::Children(parent, children) => {
                    tracing::debug!(parent = %parent, children = children.len(), "child shards listed");
                    self.on_listing(children, false, false)?;
                }
            }
        }
    }
}
