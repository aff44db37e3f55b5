use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::lease::model::WorkerItem;

fn owner(name: &str) -> Owner {
    Owner {
        worker: name.into(),
        inc: 1,
    }
}

fn live(names: &[&str]) -> Control {
    Control {
        meta: None,
        workers: names
            .iter()
            .map(|n| WorkerItem {
                owner: owner(n),
                beat: 0,
                state: WorkerState::Live,
            })
            .collect(),
        asks: Vec::new(),
    }
}

fn shard(id: &str, parent: Option<&str>, owner: Option<&str>, done: bool) -> ShardLease {
    ShardLease {
        shard: id.into(),
        parent: parent.map(Into::into),
        owner: owner.map(self::owner),
        epoch: 1,
        pos: None,
        done,
        iterator: None,
    }
}

fn ids(shards: &[ShardLease]) -> Vec<&str> {
    shards.iter().map(|s| &*s.shard).collect()
}

fn plan_for(
    me: &str,
    control: &Control,
    shards: &[ShardLease],
    listed: &HashSet<Arc<str>>,
) -> Plan {
    let me = owner(me);
    plan(&View {
        me: &me,
        control,
        shards,
        listed: Some(listed),
        leaving: &HashSet::new(),
        preferred: &HashSet::new(),
    })
}

#[test]
fn a_worker_takes_its_fair_share_of_free_shards() {
    let shards: Vec<ShardLease> = (0..10)
        .map(|i| shard(&format!("s{i}"), None, None, false))
        .collect();
    let control = live(&["a", "b", "c"]);
    let p = plan_for("a", &control, &shards, &HashSet::new());
    assert_eq!(p.take.len(), 4, "ceil(10 / 3)");
    assert!(p.ask.is_empty() && p.grant.is_empty());
}

#[test]
fn children_wait_for_their_parents_item_to_be_done() {
    let listed: HashSet<Arc<str>> = ["p", "c", "q-child"]
        .iter()
        .map(|s| Arc::from(*s))
        .collect();
    let shards = [
        shard("p", None, Some("b"), false),
        shard("c", Some("p"), None, false),
        // Its parent has no item and is not listed: aged out, a root.
        shard("orphan", Some("gone"), None, false),
        // Its parent has no item yet but is listed: wait for the item.
        shard("q-child", Some("q"), None, false),
    ];
    let mut listed = listed;
    listed.insert("q".into());
    let p = plan_for("a", &live(&["a", "b"]), &shards, &listed);
    assert_eq!(ids(&p.take), ["orphan"]);
    let mut shards = shards.to_vec();
    shards[0].done = true;
    shards[0].owner = None;
    let p = plan_for("a", &live(&["a"]), &shards, &listed);
    let mut taken = ids(&p.take);
    taken.sort_unstable();
    assert_eq!(taken, ["c", "orphan"]);
}

#[test]
fn a_dead_workers_shards_are_free_and_a_live_ones_are_not() {
    let shards = [
        shard("x", None, Some("dead"), false),
        shard("y", None, Some("b"), false),
    ];
    let p = plan_for("a", &live(&["a", "b"]), &shards, &HashSet::new());
    assert_eq!(ids(&p.take), ["x"]);
}

#[test]
fn with_nothing_free_a_worker_asks_one_holding_two_more_and_is_granted() {
    let shards: Vec<ShardLease> = (0..4)
        .map(|i| shard(&format!("s{i}"), None, Some("b"), false))
        .collect();
    let mut control = live(&["a", "b"]);
    let p = plan_for("a", &control, &shards, &HashSet::new());
    assert!(p.take.is_empty());
    assert_eq!(p.ask.len(), 2, "evens 4 : 0 out");
    assert!(
        p.ask
            .iter()
            .all(|a| &*a.owner == "b" && a.asker == owner("a"))
    );
    control.asks = p.ask.clone();
    let q = plan_for("b", &control, &shards, &HashSet::new());
    assert_eq!(q.grant.len(), 2);
    assert!(q.drop.is_empty());
    // 3 : 2 is even enough: no ask.
    let shards: Vec<ShardLease> = (0..5)
        .map(|i| {
            shard(
                &format!("s{i}"),
                None,
                Some(if i < 3 { "b" } else { "a" }),
                false,
            )
        })
        .collect();
    assert!(
        plan_for("a", &live(&["a", "b"]), &shards, &HashSet::new())
            .ask
            .is_empty()
    );
}

#[test]
fn asks_from_dead_askers_or_for_shards_not_held_are_dropped() {
    let shards = [
        shard("s0", None, Some("b"), false),
        shard("s1", None, Some("b"), false),
        shard("s2", None, Some("b"), false),
    ];
    let mut control = live(&["a", "b"]);
    control.asks = vec![
        Ask {
            owner: "b".into(),
            shard: "s0".into(),
            asker: owner("dead"),
        },
        Ask {
            owner: "b".into(),
            shard: "not-mine".into(),
            asker: owner("a"),
        },
    ];
    let p = plan_for("b", &control, &shards, &HashSet::new());
    assert!(p.grant.is_empty());
    assert_eq!(p.drop.len(), 2);
}

#[test]
fn items_are_created_by_the_groups_start() {
    let listing = [
        ShardInfo {
            id: "closed".into(),
            parent: None,
            closed: true,
        },
        ShardInfo {
            id: "open".into(),
            parent: Some("closed".into()),
            closed: false,
        },
    ];
    let th = to_create(&listing, &[], StartMark::TrimHorizon, true);
    assert!(th.iter().all(|s| s.pos.is_none() && !s.done));
    let latest = to_create(&listing, &[], StartMark::LatestSince(100), true);
    assert!(
        latest[0].done,
        "closed before a LATEST start: nothing to read"
    );
    assert!(matches!(latest[1].pos, Some(ShardPosition::LatestSince(_))));
    let late = to_create(&listing, &[], StartMark::LatestSince(100), false);
    assert!(
        late.iter().all(|s| !s.done),
        "only the creator knows what closed before"
    );
    assert!(to_create(&listing, &latest, StartMark::TrimHorizon, false).is_empty());
}

proptest! {
    /// Workers that plan in turn, each acting on the table as it left it, end with every
    /// active shard held by a live worker and counts within one of each other; no shard is
    /// ever taken from a live worker except by its grant.
    #[test]
    fn planning_converges_to_an_even_share(
        shards in 1usize..60,
        workers in 1usize..6,
        start in proptest::collection::vec(0usize..8, 60),
    ) {
        let names: Vec<String> = (0..workers).map(|i| format!("w{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut control = live(&refs);
        // Some shards start held by a worker that is gone (index >= workers), some free.
        let mut table: Vec<ShardLease> = (0..shards)
            .map(|i| {
                let holder = start[i];
                let owner = (holder < 7).then(|| format!("w{holder}"));
                shard(&format!("s{i:02}"), None, owner.as_deref(), false)
            })
            .collect();
        let listed = HashSet::new();
        let mut stable = 0;
        for _round in 0..100 {
            let mut changed = false;
            for name in &names {
                let p = plan_for(name, &control, &table, &listed);
                let me = owner(name);
                for take in &p.take {
                    let s = table.iter_mut().find(|s| s.shard == take.shard).unwrap();
                    let free = s.owner.as_ref().is_none_or(|o| !control.workers.iter().any(|w| w.owner == *o));
                    prop_assert!(free, "{} took {} from a live worker", name, s.shard);
                    s.owner = Some(me.clone());
                    changed = true;
                }
                for grant in &p.grant {
                    let s = table.iter_mut().find(|s| s.shard == grant.shard).unwrap();
                    s.owner = Some(grant.asker.clone());
                    changed = true;
                }
                let done: Vec<_> = p.grant.iter().chain(&p.drop).map(|a| a.shard.clone()).collect();
                control.asks.retain(|a| !done.contains(&a.shard));
                changed |= !p.ask.is_empty();
                control.asks.extend(p.ask);
            }
            stable = if changed { 0 } else { stable + 1 };
            if stable == 2 {
                break;
            }
        }
        prop_assert_eq!(stable, 2, "did not settle");
        let mut counts: HashMap<String, usize> = names.iter().map(|n| (n.clone(), 0)).collect();
        for s in &table {
            let holder = s.owner.as_ref().map(|o| o.worker.to_string()).unwrap_or_default();
            prop_assert!(counts.contains_key(&holder), "{} held by {:?}", s.shard, holder);
            *counts.get_mut(&holder).unwrap() += 1;
        }
        let (min, max) = (counts.values().min().unwrap(), counts.values().max().unwrap());
        prop_assert!(max - min <= 1, "{:?}", counts);
    }
}
