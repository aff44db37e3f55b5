//! How shards move: the shard round (check what is held, take, ask, grant asks), hand-overs,
//! finished shards, and losing everything.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::time::Instant;

use super::{Coordinator, Handoff, start_of, token};
use crate::checkpoint::ShardPosition;
use crate::error::Result;
use crate::lease::grant::{FromStream, Grant, ToStream};
use crate::lease::model::{Ask, Item, Op, Outcome, ShardLease};
use crate::lease::plan::{View, plan};

impl Coordinator {
    /// Reads every shard item and acts on them: creates missing ones, notices shards lost,
    /// then takes, asks and grants as planned.
    pub(super) async fn shard_round(&mut self) -> Result<()> {
        let mut shards = self
            .table
            .read_shards(&self.pk)
            .await
            .map_err(super::store_error)?;
        if self.create_items(&shards).await? {
            shards = self
                .table
                .read_shards(&self.pk)
                .await
                .map_err(super::store_error)?;
        }
        // Read after the shards: every holder named there joined before, so its worker item
        // is here, and a holder missing from it really is gone (a stale view would make a
        // live worker look dead, and its shards free).
        self.control = self.read_control().await?;
        self.dirty = false;
        self.next_shards = Instant::now() + self.timing.shard_reads;
        self.check_held(&shards);
        self.adopt_handed_over(&shards);
        let leaving: HashSet<Arc<str>> = self.handoffs.keys().cloned().collect();
        let decided = plan(&View {
            me: &self.me,
            control: &self.control,
            shards: &shards,
            listed: self.listed.as_ref(),
            leaving: &leaving,
            preferred: &self.preferred,
        });
        for lease in decided.take {
            self.take(lease).await?;
        }
        for ask in decided.ask {
            if let Outcome::Applied(_) = self.write(Op::Ask(ask.clone())).await? {
                self.my_asks.insert(ask.shard.clone(), Instant::now());
            }
        }
        for ask in decided.drop {
            self.drop_ask(&ask).await?;
        }
        for ask in decided.grant {
            self.start_handoff(ask);
        }
        self.expire_asks().await
    }

    /// A held shard whose item names another holder or epoch was lost (this incarnation was
    /// evicted while it could not hear): stop it.
    fn check_held(&mut self, shards: &[ShardLease]) {
        let lost: Vec<Arc<str>> = self
            .held
            .values()
            .filter(|g| {
                !shards.iter().any(|s| {
                    s.shard == g.shard
                        && s.epoch == g.token.epoch
                        && s.owner.as_ref() == Some(&self.me)
                })
            })
            .map(|g| g.shard.clone())
            .collect();
        for shard in lost {
            tracing::warn!(shard = %shard, "the shard has another holder now: stopped");
            self.lose(&shard);
        }
    }

    /// Shards another worker handed over to this one: read them from their saved position.
    fn adopt_handed_over(&mut self, shards: &[ShardLease]) {
        let given: Vec<ShardLease> = shards
            .iter()
            .filter(|s| !s.done && s.owner.as_ref() == Some(&self.me))
            .filter(|s| !self.held.contains_key(&s.shard))
            .cloned()
            .collect();
        for lease in given {
            tracing::info!(shard = %lease.shard, epoch = lease.epoch, "a shard was handed over to this worker");
            self.my_asks.remove(&lease.shard);
            self.hold(lease);
        }
    }

    async fn take(&mut self, lease: ShardLease) -> Result<()> {
        let op = Op::Take {
            shard: lease.shard.clone(),
            epoch: lease.epoch,
            from: lease.owner.clone(),
            me: self.me.clone(),
        };
        let taken = match self.write(op).await? {
            Outcome::Applied(Some(Item::Shard(after))) => after,
            _ => return Ok(()),
        };
        if lease.owner.is_some() {
            tracing::info!(shard = %taken.shard, from = ?lease.owner, "took over a stopped worker's shard");
        }
        self.hold(taken);
        Ok(())
    }

    /// Starts holding a shard this worker owns now.
    fn hold(&mut self, taken: ShardLease) {
        self.preferred.remove(&taken.shard);
        let grant = Grant::new(token(&taken, &self.me), start_of(&taken), taken.pos.clone());
        self.held.insert(taken.shard.clone(), grant.clone());
        {
            let mut state = self.table.lock();
            state.held.insert(taken.shard.clone(), grant.clone());
            if let Some(pos) = &taken.pos {
                state.saved.insert(taken.shard.clone(), pos.clone());
            }
            state.status.taken += 1;
        }
        self.send(ToStream::Grant(grant));
    }

    async fn drop_ask(&mut self, ask: &Ask) -> Result<()> {
        let op = Op::DropAsk {
            owner: ask.owner.clone(),
            shard: ask.shard.clone(),
        };
        self.write(op).await.map(drop)
    }

    /// Drops this worker's asks that went unanswered for long: it may ask again.
    async fn expire_asks(&mut self) -> Result<()> {
        let stale = self.timing.handoff_timeout + self.timing.heartbeat * 3;
        let now = Instant::now();
        let expired: Vec<Ask> = self
            .control
            .asks
            .iter()
            .filter(|a| a.asker == self.me)
            .filter(|a| {
                self.my_asks
                    .get(&a.shard)
                    .is_none_or(|at| now >= *at + stale)
            })
            .cloned()
            .collect();
        for ask in expired {
            self.my_asks.remove(&ask.shard);
            self.drop_ask(&ask).await?;
        }
        Ok(())
    }

    /// Starts handing a shard over: no more of its events are delivered, and once the stream
    /// says what it delivered and that is saved (or the hand-over timed out), it moves.
    fn start_handoff(&mut self, ask: Ask) {
        let Some(grant) = self.held.get(&ask.shard) else {
            return;
        };
        tracing::info!(shard = %ask.shard, to = %ask.asker, "handing a shard over");
        grant.stop();
        self.send(ToStream::Revoke {
            shard: ask.shard.clone(),
            report: true,
        });
        let handoff = Handoff {
            asker: ask.asker,
            started: Instant::now(),
            delivered: None,
        };
        self.handoffs.insert(ask.shard, handoff);
    }

    pub(super) async fn progress_handoffs(&mut self) -> Result<()> {
        let now = Instant::now();
        let ready: Vec<Arc<str>> = self
            .handoffs
            .iter()
            .filter(|(shard, h)| {
                let saved = h
                    .delivered
                    .as_ref()
                    .is_some_and(|d| self.is_saved(shard, d));
                saved || now >= h.started + self.timing.handoff_timeout
            })
            .map(|(shard, _)| shard.clone())
            .collect();
        for shard in ready {
            let (Some(handoff), Some(grant)) =
                (self.handoffs.remove(&shard), self.held.get(&shard))
            else {
                continue;
            };
            let op = Op::Transfer {
                shard: shard.clone(),
                epoch: grant.token.epoch,
                me: self.me.clone(),
                to: Some(handoff.asker.clone()),
            };
            let moved = matches!(self.write(op).await?, Outcome::Applied(_));
            self.drop_ask(&Ask {
                owner: self.me.worker.clone(),
                shard: shard.clone(),
                asker: handoff.asker,
            })
            .await?;
            self.forget(&shard);
            {
                let mut state = self.table.lock();
                if moved {
                    state.status.handed_off += 1;
                } else {
                    state.status.lost += 1;
                }
            }
            self.write(Op::BumpGen).await?;
        }
        Ok(())
    }

    /// Whether the table holds `delivered` (or more) for `shard`.
    fn is_saved(&self, shard: &Arc<str>, delivered: &Option<ShardPosition>) -> bool {
        crate::lease::model::covers(self.table.lock().saved.get(shard), delivered.as_ref())
    }

    /// Shards that ended without an event: saved as finished once what came before is saved.
    pub(super) async fn finish_silent_ends(&mut self) -> Result<()> {
        let ready: Vec<Arc<str>> = self
            .silent_ends
            .iter()
            .filter(|(shard, before)| self.is_saved(shard, before))
            .map(|(shard, _)| shard.clone())
            .collect();
        for shard in ready {
            self.silent_ends.remove(&shard);
            let Some(grant) = self.held.get(&shard) else {
                continue;
            };
            let op = Op::Finish {
                shard: shard.clone(),
                epoch: grant.token.epoch(),
                me: self.me.clone(),
            };
            if let Outcome::Applied(_) = self.write(op).await? {
                self.table.saved(shard, ShardPosition::Finished);
            }
        }
        Ok(())
    }

    /// Shards whose finish was saved: their positions leave the checkpoints, their children
    /// may be taken (by this worker first: they hold its keys' next changes).
    pub(super) async fn on_finished(&mut self) -> Result<()> {
        let finished = std::mem::take(&mut self.table.lock().finished);
        if finished.is_empty() {
            return Ok(());
        }
        for shard in &finished {
            self.forget(shard);
            let children = self.ctx.list_children(shard).await?;
            self.preferred.extend(children.iter().map(|c| c.id.clone()));
            for child in children {
                if !self.listing.iter().any(|s| s.id == child.id) {
                    self.listing.push(child);
                }
            }
        }
        self.listed = Some(self.listing.iter().map(|s| s.id.clone()).collect());
        self.write(Op::BumpGen).await?;
        self.dirty = true;
        Ok(())
    }

    pub(super) async fn on_report(&mut self, report: FromStream) {
        match report {
            FromStream::ReadToEnd {
                shard,
                epoch,
                finish_once_saved,
            } => {
                if !self.holds(&shard, epoch) {
                    return;
                }
                self.table.lock().awaiting_save.insert(shard.clone());
                if let Some(before) = finish_once_saved {
                    self.silent_ends.insert(shard, before);
                }
            }
            FromStream::Delivered {
                shard,
                epoch,
                position,
            } => {
                if !self.holds(&shard, epoch) {
                    return;
                }
                if let Some(handoff) = self.handoffs.get_mut(&shard) {
                    handoff.delivered = Some(position);
                }
            }
        }
    }

    /// Whether this incarnation holds `shard` under lease `epoch` (a report of an earlier
    /// lease of the shard, lost and taken again since, speaks of another reader).
    fn holds(&self, shard: &Arc<str>, epoch: u64) -> bool {
        self.held
            .get(shard)
            .is_some_and(|grant| grant.token.epoch == epoch)
    }

    /// This incarnation lost every shard (it was evicted): stop them all.
    pub(super) fn lose_all(&mut self) {
        let shards: Vec<Arc<str>> = self.held.keys().cloned().collect();
        for shard in shards {
            self.lose(&shard);
        }
        self.handoffs.clear();
    }

    fn lose(&mut self, shard: &Arc<str>) {
        if let Some(grant) = self.held.get(shard) {
            grant.stop();
        }
        self.send(ToStream::Revoke {
            shard: shard.clone(),
            report: false,
        });
        self.forget(shard);
        self.table.lock().status.lost += 1;
    }

    /// The shard is no longer this worker's: its position leaves the stream's checkpoints.
    fn forget(&mut self, shard: &Arc<str>) {
        self.held.remove(shard);
        self.silent_ends.remove(shard);
        let mut state = self.table.lock();
        state.held.remove(shard);
        state.saved.remove(shard);
        state.awaiting_save.remove(shard);
        drop(state);
        self.send(ToStream::Forget(shard.clone()));
    }
}
