//! The merge's shards when this process reads the whole stream: every listed shard, in
//! lineage order, from where the checkpoint being resumed left it.

use std::collections::HashSet;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use super::listing::{Discovered, Listing};
use super::pool::Pool;
use crate::api::Context;
use crate::checkpoint::Positions;
use crate::checkpoint::resume::{Resume, reconcile};
use crate::error::Result;
use crate::lineage::{Lineage, ShardInfo};
use crate::status::Gap;

pub(super) struct Alone {
    pub(super) lineage: Lineage,
    listing: Listing,
    /// No checkpoint, start at `LATEST`.
    fresh_latest: bool,
    /// What the first listing made of the start: which shards need no reading, which start at
    /// `LATEST`.
    resume: Resume,
    /// Shards of the first listing's early pages whose parent is not listed yet.
    held: Vec<ShardInfo>,
}

impl Alone {
    pub(super) fn new(ctx: Arc<Context>, fresh_latest: bool) -> Self {
        Self {
            lineage: Lineage::default(),
            listing: Listing::new(ctx),
            fresh_latest,
            resume: Resume::default(),
            held: Vec::new(),
        }
    }

    /// Takes in the results of due listings, until one is pending or none is due.
    pub(super) fn poll_listing(
        &mut self,
        cx: &mut TaskContext<'_>,
        mut merge: Parts<'_>,
    ) -> Result<()> {
        loop {
            let readers_busy = merge.ctx.options.catch_up && !merge.pool.is_idle();
            let Poll::Ready(result) = self.listing.poll(cx, readers_busy) else {
                return Ok(());
            };
            let merge = merge.reborrow();
            match result? {
                Discovered::Full { shards, first } => {
                    self.held.clear();
                    self.on_listing(merge, shards, true, first)?
                }
                Discovered::Page(shards) => self.on_first_page(merge, shards),
                Discovered::Children(parent, children) => {
                    tracing::debug!(parent = %parent, children = children.len(), "child shards listed");
                    self.on_listing(merge, children, false, false)?;
                }
            }
        }
    }

    /// A page of the first listing, ahead of the rest. With nothing to resume and not at
    /// `LATEST` (whose closed shards are decided by the whole listing), its shards are read at
    /// once; a shard whose parent is not listed yet waits, with its descendants, for the rest
    /// (the parent may be on a later page, or gone).
    fn on_first_page(&mut self, mut merge: Parts<'_>, page: Vec<ShardInfo>) {
        if self.fresh_latest || !merge.positions.listed().is_empty() {
            return;
        }
        self.held.extend(page);
        let mut now: Vec<ShardInfo> = Vec::new();
        let mut taken: HashSet<Arc<str>> = HashSet::new();
        loop {
            let (ready, wait): (Vec<ShardInfo>, Vec<ShardInfo>) =
                std::mem::take(&mut self.held).into_iter().partition(|s| {
                    s.parent
                        .as_ref()
                        .is_none_or(|p| self.lineage.knows(p) || taken.contains(p))
                });
            self.held = wait;
            if ready.is_empty() {
                break;
            }
            taken.extend(ready.iter().map(|s| s.id.clone()));
            now.extend(ready);
        }
        let ready = self.lineage.observe(&now, |_| false);
        if !ready.is_empty() {
            tracing::info!(
                shards = ready.len(),
                "shards ready before the listing's end"
            );
        }
        self.start(&mut merge, ready);
    }

    fn on_listing(
        &mut self,
        mut merge: Parts<'_>,
        shards: Vec<ShardInfo>,
        full: bool,
        first: bool,
    ) -> Result<()> {
        if first {
            let skip = merge.ctx.options.skip_trimmed();
            let mut resume = reconcile(merge.positions, &shards, self.fresh_latest, skip)?;
            for (id, edit) in resume.edits.drain(..) {
                merge.positions.edit(id, edit);
            }
            merge.gaps.extend(resume.gaps.drain(..));
            self.resume = resume;
        }
        let done = &self.resume.done;
        let ready = self.lineage.observe(&shards, |s| done.contains(&s.id));
        if !ready.is_empty() {
            tracing::info!(shards = ready.len(), "shards ready");
        }
        self.start(&mut merge, ready);
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
                merge.positions.remove(&id);
            }
        }
        Ok(())
    }

    fn start(&self, merge: &mut Parts<'_>, ready: Vec<Arc<str>>) {
        for id in ready {
            let start = self.resume.start_of(&id, merge.positions.position(&id));
            let closed = self.lineage.is_closed(&id);
            merge.pool.start(merge.ctx, id, start, closed, false);
        }
    }

    /// A shard was delivered to its end: start its listed children, or look for them.
    pub(super) fn on_finished(&mut self, mut merge: Parts<'_>, shard: Arc<str>) {
        let ready = self.lineage.finish(&shard);
        if self.lineage.has_children(&shard) {
            self.start(&mut merge, ready);
        } else {
            self.listing.await_children(shard);
        }
    }

    /// Nothing is listed or to be listed.
    pub(super) fn is_idle(&self) -> bool {
        self.listing.is_idle()
    }

    /// A look-up for children was held back while readers were busy.
    pub(super) fn is_deferred(&self) -> bool {
        self.listing.is_deferred()
    }
}

/// The merge's state a source works on.
pub(super) struct Parts<'a> {
    pub(super) ctx: &'a Arc<Context>,
    pub(super) positions: &'a mut Positions,
    pub(super) pool: &'a mut Pool,
    pub(super) gaps: &'a mut std::collections::VecDeque<Gap>,
}

impl Parts<'_> {
    pub(super) fn reborrow(&mut self) -> Parts<'_> {
        Parts {
            ctx: self.ctx,
            positions: self.positions,
            pool: self.pool,
            gaps: self.gaps,
        }
    }
}
