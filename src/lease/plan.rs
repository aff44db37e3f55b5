//! What a worker does with what it read from the lease table: which shards it takes, which it
//! asks for, which asks it grants, and which listed shards need an item. Pure decisions.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::model::{Ask, Control, Owner, ShardLease, StartMark, WorkerState};
use crate::checkpoint::ShardPosition;
use crate::lineage::ShardInfo;

/// What one worker sees: the control items, every shard item, and the stream's listing.
#[derive(Debug)]
pub(crate) struct View<'a> {
    pub(crate) me: &'a Owner,
    pub(crate) control: &'a Control,
    pub(crate) shards: &'a [ShardLease],
    /// The shards the stream lists now (`None`: not listed yet).
    pub(crate) listed: Option<&'a HashSet<Arc<str>>>,
    /// Shards this worker is handing over: no longer counted as its own.
    pub(crate) leaving: &'a HashSet<Arc<str>>,
    /// Shards to take first: the children of shards this worker finished.
    pub(crate) preferred: &'a HashSet<Arc<str>>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Shards to take, in order, up to this worker's fair share.
    pub(crate) take: Vec<ShardLease>,
    /// Asks to put on fuller workers.
    pub(crate) ask: Vec<Ask>,
    /// Asks of this worker's shards to grant: hand the shard over to the asker.
    pub(crate) grant: Vec<Ask>,
    /// Asks to drop: stale, or granting them would not even the load.
    pub(crate) drop: Vec<Ask>,
}

impl View<'_> {
    /// Whether `owner` is a live incarnation.
    pub(crate) fn is_live(&self, owner: &Owner) -> bool {
        self.control
            .workers
            .iter()
            .any(|w| w.owner == *owner && w.state == WorkerState::Live)
    }

    /// Whether a shard's parent no longer stands in its way: the parent is done, or has no
    /// item and is no longer listed (it aged out: the shard is a root).
    fn parent_done(&self, shard: &ShardLease, by_id: &HashMap<&str, &ShardLease>) -> bool {
        let Some(parent) = &shard.parent else {
            return true;
        };
        match by_id.get(&**parent) {
            Some(p) => p.done,
            None => self.listed.is_some_and(|listed| !listed.contains(parent)),
        }
    }

    /// Shards that may be read now: not done, parent done.
    fn active(&self) -> Vec<&ShardLease> {
        let by_id: HashMap<&str, &ShardLease> =
            self.shards.iter().map(|s| (&*s.shard, s)).collect();
        self.shards
            .iter()
            .filter(|s| !s.done && self.parent_done(s, &by_id))
            .collect()
    }
}

/// Decides this worker's next moves.
///
/// Fair share without a leader: every live worker aims at `ceil(active / live)` shards. A
/// worker under it takes free shards (its preferred ones first, the rest in an order of its
/// own, so that workers do not all race for the same shard); with none free, it asks a worker
/// holding at least two more than itself for some. A worker grants an ask while it holds at
/// least two more than the asker, so the counts converge to within one of each other, and a
/// shard moves only by a hand-over, never by a steal.
pub(crate) fn plan(view: &View<'_>) -> Plan {
    let active = view.active();
    let live: Vec<&Owner> = view
        .control
        .workers
        .iter()
        .filter(|w| w.state == WorkerState::Live)
        .map(|w| &w.owner)
        .collect();
    let mut held: HashMap<&Owner, usize> = live.iter().map(|o| (*o, 0)).collect();
    for s in &active {
        if let Some(owner) = s.owner.as_ref().filter(|o| view.is_live(o)) {
            if owner == view.me && view.leaving.contains(&s.shard) {
                continue;
            }
            *held.entry(owner).or_default() += 1;
        }
    }
    let target = active.len().div_ceil(live.len().max(1));
    let mine = held.get(view.me).copied().unwrap_or(0);
    let mut plan = Plan::default();
    let mut free: Vec<&ShardLease> = active
        .iter()
        .copied()
        .filter(|s| s.owner.as_ref().is_none_or(|o| !view.is_live(o)))
        .collect();
    free.sort_by_key(|s| {
        (
            !view.preferred.contains(&s.shard),
            spread(view.me, &s.shard),
        )
    });
    plan.take = free
        .into_iter()
        .take(target.saturating_sub(mine))
        .cloned()
        .collect();
    let after_takes = mine + plan.take.len();
    if after_takes < target && !view.control.asks.iter().any(|a| a.asker == *view.me) {
        plan.ask = asks(view, &active, &held, after_takes, target);
    }
    grants(view, &held, &mut plan);
    plan
}

/// An order of shards particular to each worker.
fn spread(me: &Owner, shard: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&*me.worker, me.inc, shard).hash(&mut h);
    h.finish()
}

/// Asks for shards of workers holding at least two more than this one, as many as evens
/// the two out, up to this worker's fair share.
fn asks(
    view: &View<'_>,
    active: &[&ShardLease],
    held: &HashMap<&Owner, usize>,
    mine: usize,
    target: usize,
) -> Vec<Ask> {
    let mut want = target - mine;
    let mut out = Vec::new();
    let mut fullest: Vec<(&Owner, usize)> = held
        .iter()
        .filter(|(o, n)| **o != view.me && **n >= mine + 2)
        .map(|(o, n)| (*o, *n))
        .collect();
    fullest.sort_by_key(|(o, n)| (std::cmp::Reverse(*n), o.worker.clone()));
    for (owner, n) in fullest {
        let count = ((n - mine) / 2).min(want);
        let theirs = active
            .iter()
            .filter(|s| s.owner.as_ref() == Some(owner))
            .filter(|s| !view.control.asks.iter().any(|a| a.shard == s.shard));
        out.extend(theirs.take(count).map(|s| Ask {
            owner: owner.worker.clone(),
            shard: s.shard.clone(),
            asker: view.me.clone(),
        }));
        want -= count.min(want);
        if want == 0 {
            break;
        }
    }
    out
}

/// Grants asks of this worker's shards while it holds at least two more than the asker.
fn grants(view: &View<'_>, held: &HashMap<&Owner, usize>, plan: &mut Plan) {
    let mut mine = held.get(view.me).copied().unwrap_or(0);
    let mut given: HashMap<&Owner, usize> = HashMap::new();
    for ask in view
        .control
        .asks
        .iter()
        .filter(|a| a.owner == view.me.worker)
    {
        let holds = view.shards.iter().any(|s| {
            s.shard == ask.shard
                && s.owner.as_ref() == Some(view.me)
                && !s.done
                && !view.leaving.contains(&s.shard)
        });
        let theirs = held.get(&ask.asker).copied().unwrap_or(0)
            + given.get(&ask.asker).copied().unwrap_or(0);
        if holds && view.is_live(&ask.asker) && mine >= theirs + 2 {
            mine -= 1;
            *given.entry(&ask.asker).or_default() += 1;
            plan.grant.push(ask.clone());
        } else {
            plan.drop.push(ask.clone());
        }
    }
}

/// The items to create for listed shards that have none.
///
/// A group that started at the trim horizon reads every shard from its start. One that
/// started at `LATEST` reads every shard from the trim horizon but skips records created
/// before the start, so nothing written after it is lost, whoever creates the item and
/// whenever; the worker that created the group (`creator`, on its first listing) also marks
/// the shards closed before the start as done, and hands the open ones a `LATEST` iterator
/// (see `ShardLease::iterator`) so their first reader need not read their history.
pub(crate) fn to_create(
    listing: &[ShardInfo],
    shards: &[ShardLease],
    start: StartMark,
    creator: bool,
) -> Vec<ShardLease> {
    let known: HashSet<&str> = shards.iter().map(|s| &*s.shard).collect();
    listing
        .iter()
        .filter(|info| !known.contains(&*info.id))
        .map(|info| {
            let (pos, done) = match start {
                StartMark::TrimHorizon => (None, false),
                StartMark::LatestSince(_) if creator && info.closed => {
                    (Some(ShardPosition::Finished), true)
                }
                StartMark::LatestSince(t) => (
                    Some(ShardPosition::LatestSince(crate::config::at_epoch_secs(t))),
                    false,
                ),
            };
            ShardLease::new(info, pos, done)
        })
        .collect()
}

#[cfg(test)]
mod tests;
