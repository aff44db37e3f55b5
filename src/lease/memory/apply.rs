//! The in-memory table's writes: each protocol write applied atomically, under the table's
//! lock, with the same conditions as the DynamoDB requests in `dynamo/items.rs`.

use super::{LeaseWrite, Partition, State};
use crate::checkpoint::ShardPosition;
use crate::lease::model::{
    Item, Meta, Op, Outcome, Owner, ShardLease, WorkerItem, WorkerState, goes_back,
};

impl State {
    pub(super) fn apply(&mut self, pk: &str, op: &Op) -> Outcome {
        let part = self.partitions.entry(pk.to_owned()).or_default();
        let outcome = match op {
            Op::CreateMeta(_) | Op::BumpGen => apply_meta(part, op),
            Op::Join(_) | Op::Heartbeat(_) | Op::Evict { .. } | Op::Leave(_) => {
                apply_worker(part, op)
            }
            Op::Ask(ask) => {
                let key = (ask.owner.clone(), ask.shard.clone());
                match part.asks.get(&key) {
                    Some(found) => Outcome::Refused(Some(Item::Ask(found.clone()))),
                    None => {
                        part.asks.insert(key, ask.clone());
                        Outcome::Applied(None)
                    }
                }
            }
            Op::DropAsk { owner, shard } => {
                part.asks.remove(&(owner.clone(), shard.clone()));
                Outcome::Applied(None)
            }
            _ => apply_shard(part, op),
        };
        if let (Outcome::Applied(Some(Item::Shard(s))), false) =
            (&outcome, matches!(op, Op::CreateShard(_)))
        {
            self.clock += 1;
            self.history.push(LeaseWrite {
                at: self.clock,
                op: op.name(),
                shard_id: s.shard.to_string(),
                epoch: s.epoch,
                owner: s.owner.as_ref().map(Owner::encode),
                done: s.done,
            });
        }
        outcome
    }
}

fn apply_meta(part: &mut Partition, op: &Op) -> Outcome {
    match (op, &mut part.meta) {
        (Op::CreateMeta(start), None) => {
            let meta = Meta {
                start: *start,
                generation: 0,
            };
            part.meta = Some(meta.clone());
            Outcome::Applied(Some(Item::Meta(meta)))
        }
        (Op::BumpGen, Some(meta)) => {
            meta.generation += 1;
            Outcome::Applied(Some(Item::Meta(meta.clone())))
        }
        (_, meta) => Outcome::Refused(meta.clone().map(Item::Meta)),
    }
}

fn apply_worker(part: &mut Partition, op: &Op) -> Outcome {
    let (Op::Join(owner) | Op::Heartbeat(owner) | Op::Evict { owner, .. } | Op::Leave(owner)) = op
    else {
        return Outcome::Refused(None);
    };
    let current = part.workers.get(&owner.worker).cloned();
    let mine = current.as_ref().is_some_and(|w| w.owner == *owner);
    let live = current
        .as_ref()
        .is_some_and(|w| w.state == WorkerState::Live);
    let next = match op {
        Op::Join(_) if !live => Some(WorkerItem {
            owner: owner.clone(),
            beat: 0,
            state: WorkerState::Live,
        }),
        Op::Heartbeat(_) if mine && live => current.clone().map(|mut w| {
            w.beat += 1;
            w
        }),
        Op::Evict { beat, .. }
            if mine && live && current.as_ref().map(|w| w.beat) == Some(*beat) =>
        {
            current.clone().map(|mut w| {
                w.state = WorkerState::Evicted;
                w
            })
        }
        Op::Leave(_) if mine => current.clone().map(|mut w| {
            w.state = WorkerState::Left;
            w
        }),
        _ => None,
    };
    match next {
        Some(item) => {
            part.workers.insert(owner.worker.clone(), item.clone());
            Outcome::Applied(Some(Item::Worker(item)))
        }
        None => Outcome::Refused(current.map(Item::Worker)),
    }
}

fn apply_shard(part: &mut Partition, op: &Op) -> Outcome {
    if let Op::CreateShard(lease) = op {
        return match part.shards.get(&lease.shard) {
            Some(found) => Outcome::Refused(Some(Item::Shard(found.clone()))),
            None => {
                part.shards.insert(lease.shard.clone(), lease.clone());
                Outcome::Applied(Some(Item::Shard(lease.clone())))
            }
        };
    }
    let shard = match op {
        Op::Take { shard, .. }
        | Op::Checkpoint { shard, .. }
        | Op::Finish { shard, .. }
        | Op::Transfer { shard, .. } => shard,
        _ => return Outcome::Refused(None),
    };
    let Some(current) = part.shards.get_mut(shard) else {
        return Outcome::Refused(None);
    };
    if !shard_write(current, op) {
        return Outcome::Refused(Some(Item::Shard(current.clone())));
    }
    Outcome::Applied(Some(Item::Shard(current.clone())))
}

/// Applies a shard write to `s` if its condition holds.
fn shard_write(s: &mut ShardLease, op: &Op) -> bool {
    let held = |me: &Owner, epoch: u64| s.owner.as_ref() == Some(me) && s.epoch == epoch;
    match op {
        Op::Take {
            epoch, from, me, ..
        } if s.epoch == *epoch && !s.done && s.owner == *from => {
            s.owner = Some(me.clone());
            s.epoch += 1;
        }
        Op::Checkpoint { epoch, me, seq, .. } => {
            let to = ShardPosition::After(seq.clone());
            if !held(me, *epoch) || s.done || s.pos.as_ref().is_some_and(|p| goes_back(p, &to)) {
                return false;
            }
            s.pos = Some(to);
        }
        Op::Finish { epoch, me, .. } if held(me, *epoch) => {
            s.done = true;
            s.pos = Some(ShardPosition::Finished);
            s.owner = None;
            s.epoch += 1;
        }
        Op::Transfer { epoch, me, to, .. } if held(me, *epoch) => {
            s.owner = to.clone();
            s.epoch += 1;
        }
        _ => return false,
    }
    true
}
