//! The coordinator's rounds: joining, heartbeats and what they see, listings, closing.

use std::collections::HashSet;
use std::sync::Arc;

use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use futures::future::join_all;
use tokio::time::Instant;

use super::{Coordinator, Seen, worker_of};
use crate::error::{Error, ErrorKind, Result};
use crate::lease::model::{Control, Item, Op, Outcome, Owner, ShardLease, StartMark, WorkerState};
use crate::lease::plan::to_create;

impl Coordinator {
    /// Joins the group, sets its start if it is new, and lists the stream.
    pub(super) async fn start_up(&mut self) -> Result<()> {
        self.table
            .backend
            .prepare(false)
            .await
            .map_err(|f| f.error)?;
        let sent = self.join().await?;
        self.table.fence.open_until(sent + self.timing.fence);
        if let Outcome::Applied(_) = self.write(Op::CreateMeta(self.start)).await? {
            self.creator = true;
        }
        self.control = self.read_control().await?;
        self.meta = self.control.meta.clone();
        if self.meta.is_none() {
            return Err(Error::store(
                "the lease table holds no #meta item for the group after creating it",
                std::io::Error::other("missing #meta"),
            ));
        }
        self.write(Op::BumpGen).await?;
        self.list().await?;
        self.next_heartbeat = sent + self.timing.heartbeat;
        tracing::info!(worker = %self.me, creator = self.creator, "joined the lease group");
        Ok(())
    }

    /// Writes this incarnation's worker item. If a live item of the same worker id stands in
    /// the way, it is an earlier run of this process (crashed) only if its heartbeat stands
    /// still for the eviction delay: then it is evicted; otherwise the id is in use.
    async fn join(&mut self) -> Result<Instant> {
        for attempt in 0..2 {
            let sent = Instant::now();
            let current = match self.write(Op::Join(self.me.clone())).await? {
                Outcome::Applied(_) => return Ok(sent),
                Outcome::Refused(current) => worker_of(current),
            };
            let Some(other) = current.filter(|w| w.state == WorkerState::Live) else {
                continue;
            };
            if attempt == 0 {
                tracing::info!(worker = %self.me.worker, "the worker id is live in the lease table: waiting to see whether it is a stale run");
                tokio::time::sleep(self.timing.evict_after).await;
                let now = self.read_control().await?;
                let still = now
                    .workers
                    .iter()
                    .find(|w| w.owner.worker == other.owner.worker);
                if still.is_some_and(|w| w.owner == other.owner && w.beat == other.beat) {
                    let evict = Op::Evict {
                        owner: other.owner.clone(),
                        beat: other.beat,
                    };
                    self.write(evict).await?;
                    continue;
                }
            }
            break;
        }
        Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "worker id {:?} is already live in lease group {}: another process uses it",
                &*self.me.worker, self.pk
            ),
        ))
    }

    /// Everything due now.
    pub(super) async fn step(&mut self) -> Result<()> {
        let now = Instant::now();
        if now >= self.next_heartbeat {
            self.heartbeat().await?;
        }
        self.evict_silent().await?;
        self.finish_silent_ends().await?;
        self.on_finished().await?;
        self.progress_handoffs().await?;
        if self.is_lister() && Instant::now() >= self.next_listing {
            self.list().await?;
        }
        if self.dirty || Instant::now() >= self.next_shards {
            self.shard_round().await?;
        }
        Ok(())
    }

    /// Bumps this incarnation's heartbeat (extending the fence from the send time) and reads
    /// the control items. Refused: this incarnation was evicted; it gives up every shard and
    /// joins again as a new one.
    async fn heartbeat(&mut self) -> Result<()> {
        let sent = Instant::now();
        match self.write(Op::Heartbeat(self.me.clone())).await? {
            Outcome::Applied(_) => self.table.fence.open_until(sent + self.timing.fence),
            Outcome::Refused(_) => {
                tracing::warn!(worker = %self.me, "evicted by the group (paused or cut off too long): giving up every shard");
                self.table.fence.close();
                self.lose_all();
                self.me = Owner {
                    worker: self.me.worker.clone(),
                    inc: fastrand::u64(1..),
                };
                if let Some(attached) = self.table.lock().attached.as_mut() {
                    attached.me = self.me.clone();
                }
                let sent = self.join().await?;
                self.table.fence.open_until(sent + self.timing.fence);
                self.write(Op::BumpGen).await?;
            }
        }
        let jitter = self.timing.heartbeat.mul_f64(fastrand::f64() * 0.1);
        self.next_heartbeat = sent + self.timing.heartbeat - jitter;
        let control = self.read_control().await?;
        self.observe(&control, Instant::now());
        if control.meta.as_ref().map(|m| m.generation) != self.meta.as_ref().map(|m| m.generation) {
            self.dirty = true;
        }
        self.meta = control.meta.clone();
        self.control = control;
        Ok(())
    }

    /// Notes when each peer's heartbeat counter was last seen changing (at the time the read
    /// returned: never earlier than the heartbeat itself was sent).
    fn observe(&mut self, control: &Control, at: Instant) {
        let live: HashSet<&Arc<str>> = control
            .workers
            .iter()
            .filter(|w| w.state == WorkerState::Live && w.owner.worker != self.me.worker)
            .map(|w| &w.owner.worker)
            .collect();
        self.seen.retain(|worker, _| live.contains(worker));
        for w in &control.workers {
            if w.state != WorkerState::Live || w.owner.worker == self.me.worker {
                continue;
            }
            let moved = self
                .seen
                .get(&w.owner.worker)
                .is_none_or(|s| s.owner != w.owner || s.beat != w.beat);
            if moved {
                let seen = Seen {
                    owner: w.owner.clone(),
                    beat: w.beat,
                    at,
                };
                self.seen.insert(w.owner.worker.clone(), seen);
            }
        }
    }

    /// Evicts peers whose heartbeat stood still past the eviction delay. The write is
    /// conditional on the counter still being the one seen, so a heartbeat that landed since
    /// wins.
    async fn evict_silent(&mut self) -> Result<()> {
        let now = Instant::now();
        let due: Vec<(Owner, u64)> = self
            .seen
            .values()
            .filter(|s| now >= s.at + self.timing.evict_after)
            .map(|s| (s.owner.clone(), s.beat))
            .collect();
        for (owner, beat) in due {
            self.seen.remove(&owner.worker);
            let evict = Op::Evict {
                owner: owner.clone(),
                beat,
            };
            if let Outcome::Applied(_) = self.write(evict).await? {
                tracing::warn!(worker = %owner, "evicted a silent worker: its shards are free");
                self.write(Op::BumpGen).await?;
                self.dirty = true;
            }
            if let Some(w) = self.control.workers.iter_mut().find(|w| w.owner == owner) {
                w.state = WorkerState::Evicted;
            }
        }
        Ok(())
    }

    /// Lists every shard of the stream.
    pub(super) async fn list(&mut self) -> Result<()> {
        self.listing = self.ctx.list_all().await?;
        self.listed = Some(self.listing.iter().map(|s| s.id.clone()).collect());
        self.next_listing = Instant::now() + super::LISTING_EVERY;
        self.dirty = true;
        Ok(())
    }

    /// Creates the items of listed shards that have none; `true` if any was created.
    pub(super) async fn create_items(&mut self, shards: &[ShardLease]) -> Result<bool> {
        let start = self
            .meta
            .as_ref()
            .map_or(StartMark::TrimHorizon, |m| m.start);
        let mut items = to_create(&self.listing, shards, start, self.creator);
        // The creator's first listing hands open shards a LATEST iterator for their first
        // reader; an iterator lives 15 minutes, and an expired one falls back safely.
        if self.creator && matches!(start, StartMark::LatestSince(_)) {
            let open: HashSet<&Arc<str>> = self
                .listing
                .iter()
                .filter(|s| !s.closed)
                .map(|s| &s.id)
                .collect();
            for item in items.iter_mut().filter(|i| open.contains(&i.shard)) {
                let got = self
                    .ctx
                    .shard_iterator(&item.shard, ShardIteratorType::Latest, None)
                    .await;
                item.iterator = got.ok();
            }
        }
        self.creator = false;
        let created = !items.is_empty();
        let writes = items
            .into_iter()
            .map(|item| self.write(Op::CreateShard(item)));
        for result in join_all(writes).await {
            result?;
        }
        Ok(created)
    }

    /// Closing: releases every shard (nothing more is delivered, the last save is done) and
    /// leaves the group.
    pub(super) async fn close(mut self) {
        self.table.fence.close();
        let result = self.release_all().await;
        if let Err(e) = &result {
            tracing::warn!(worker = %self.me, error = %e, "could not release every shard: they move once the lease runs out");
        }
        let mut state = self.table.lock();
        state.closed = Some(result.map_err(|e| e.kind()));
        drop(state);
        self.table.released.notify_waiters();
    }

    async fn release_all(&mut self) -> Result<()> {
        let grants: Vec<_> = self.held.drain().map(|(_, g)| g).collect();
        for grant in &grants {
            grant.stop();
            self.send(crate::lease::ToStream::Revoke {
                shard: grant.shard.clone(),
                report: false,
            });
        }
        let releases = grants.iter().map(|g| {
            self.write(Op::Transfer {
                shard: g.shard.clone(),
                epoch: g.token.epoch,
                me: self.me.clone(),
                to: None,
            })
        });
        for result in join_all(releases).await {
            if let Outcome::Refused(Some(Item::Shard(s))) = result? {
                tracing::debug!(shard = %s.shard, "not released: it had moved on already");
            }
        }
        self.table.lock().held.clear();
        self.write(Op::Leave(self.me.clone())).await?;
        self.write(Op::BumpGen).await?;
        tracing::info!(worker = %self.me, shards = grants.len(), "released every shard and left the group");
        Ok(())
    }
}
