//! The merge's shards when several processes share the stream: the ones the lease table's
//! coordinator grants this process, until it revokes them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use super::alone::Parts;
use crate::config::StartPosition;
use crate::error::{Error, ErrorKind, Result};
use crate::lease::{FromStream, Grant, LeaseTable, Lessee, ToStream};
use crate::status::ShardState;

pub(super) struct Leased {
    /// The table, until the stream first runs and attaches to it.
    table: Option<LeaseTable>,
    start: StartPosition,
    lessee: Option<Lessee>,
    grants: HashMap<Arc<str>, Arc<Grant>>,
    states: BTreeMap<Arc<str>, ShardState>,
    /// Shards that ended on a page without records, and their position before it.
    silent_ends: HashMap<Arc<str>, Option<crate::checkpoint::ShardPosition>>,
}

impl Leased {
    pub(super) fn new(table: LeaseTable, start: StartPosition) -> Self {
        Self {
            table: Some(table),
            start,
            lessee: None,
            grants: HashMap::new(),
            states: BTreeMap::new(),
            silent_ends: HashMap::new(),
        }
    }

    pub(super) fn states(&self) -> Vec<(Arc<str>, ShardState)> {
        self.states.iter().map(|(id, s)| (id.clone(), *s)).collect()
    }

    pub(super) fn grant(&self, shard: &str) -> Option<&Arc<Grant>> {
        self.grants.get(shard)
    }

    pub(super) fn lessee(&self) -> Option<&Lessee> {
        self.lessee.as_ref()
    }

    /// Takes in the coordinator's grants and revocations. `Ok(true)`: the coordinator is gone
    /// (the table was closed), so the stream ends.
    pub(super) fn poll_events(
        &mut self,
        cx: &mut TaskContext<'_>,
        merge: Parts<'_>,
    ) -> Result<bool> {
        if let Some(table) = self.table.take() {
            self.lessee = Some(table.attach(merge.ctx.clone(), self.start)?);
        }
        let Some(lessee) = self.lessee.as_mut() else {
            return Ok(true);
        };
        loop {
            let event = match lessee.poll_event(cx) {
                Poll::Pending => return Ok(false),
                Poll::Ready(Some(event)) => event,
                Poll::Ready(None) => {
                    return match lessee.fence.take_failure() {
                        Some(error) => Err(error),
                        None => Ok(true),
                    };
                }
            };
            match event {
                ToStream::Grant(grant) => {
                    let shard = grant.shard.clone();
                    tracing::info!(shard = %shard, epoch = grant.token.epoch(), "shard granted");
                    let position = grant.position.clone();
                    merge
                        .positions
                        .lease(shard.clone(), grant.token.epoch(), position);
                    merge
                        .pool
                        .start(merge.ctx, shard.clone(), grant.start.clone(), false, true);
                    self.states.insert(shard.clone(), ShardState::Reading);
                    self.grants.insert(shard, grant);
                }
                ToStream::Revoke { shard, report } => {
                    merge.pool.stop(&shard);
                    self.states.remove(&shard);
                    let grant = self.grants.remove(&shard);
                    if let Some(grant) = grant.filter(|_| report) {
                        let position = merge.positions.get(&shard).cloned();
                        lessee.report(FromStream::Delivered {
                            shard,
                            epoch: grant.token.epoch(),
                            position,
                        });
                    }
                }
                ToStream::Forget(shard) => {
                    // Nothing more of it reaches the positions: a later page would add a
                    // position that no lease fences.
                    merge.pool.stop(&shard);
                    merge.positions.remove(&shard);
                    self.states.remove(&shard);
                    self.grants.remove(&shard);
                }
            }
        }
    }

    /// The shard ended on a page without records, after `before` was delivered.
    pub(super) fn ended_silently(
        &mut self,
        shard: Arc<str>,
        before: Option<crate::checkpoint::ShardPosition>,
    ) {
        self.silent_ends.insert(shard, before);
    }

    /// The shard's last page was delivered: its finish is saved with the checkpoint of its
    /// last event or, when no event carried it, by the coordinator once that is saved.
    pub(super) fn on_finished(&mut self, shard: Arc<str>) {
        self.states.insert(shard.clone(), ShardState::Finished);
        let silent = self.silent_ends.remove(&shard);
        let (Some(lessee), Some(grant)) = (&self.lessee, self.grants.get(&shard)) else {
            return;
        };
        lessee.report(FromStream::ReadToEnd {
            shard,
            epoch: grant.token.epoch(),
            finish_once_saved: silent,
        });
    }
}

/// `until_caught_up` reads a whole stream to its current end; a leased stream reads a share
/// that moves.
pub(super) fn refuse_catch_up() -> Error {
    Error::new(
        ErrorKind::Config,
        "until_caught_up cannot be combined with a lease table: a shared stream's shards move between processes",
    )
}
