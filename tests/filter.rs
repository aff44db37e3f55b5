//! Filtering (`ChangeStreamBuilder::filter`, `kinds`): dropped events never reach user code,
//! kept ones come in the same order with the same positions, and a filtered-out tail does not
//! hold the committer's saves back; nothing yielded and unacknowledged is ever saved past.

#![cfg(feature = "test-util")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use dynamodb_stream::sim::{AttributeValue, Simulator};
use dynamodb_stream::store::MemoryStore;
use dynamodb_stream::{
    Change, ChangeEvent, ChangeStreamBuilder, CheckpointStore, Committer, EventKind,
};
use futures::StreamExt;
use proptest::prelude::*;
use support::sim::{builder, drain_ok, item, key, open_shards, paused_runtime, pk_v};

/// Keeps the keys that start with "keep".
fn kept(change: &Change) -> bool {
    change
        .raw_keys()
        .get("pk")
        .and_then(|pk| pk.as_s().ok())
        .is_some_and(|pk| pk.starts_with("keep"))
}

/// Kept and dropped writes over splits, ending with dropped ones in every shard.
fn scripted() -> Simulator {
    let sim = Simulator::builder()
        .initial_shards(2)
        .max_page(3)
        .seed(3)
        .build();
    for v in 0..6 {
        sim.put_item(item(&format!("keep{}", v % 3), v));
        sim.put_item(item(&format!("drop{}", v % 4), v));
    }
    sim.split(&open_shards(&sim)[0], 2);
    for v in 6..10 {
        sim.put_item(item(&format!("keep{}", v % 3), v));
    }
    for v in 10..30 {
        sim.put_item(item(&format!("drop{}", v % 5), v));
    }
    sim
}

/// Everything the stream yields, acknowledged one by one through a committer that saves on
/// every acknowledgement; returns the events and the store.
async fn commit_all(b: ChangeStreamBuilder) -> (Vec<ChangeEvent>, MemoryStore) {
    let store = MemoryStore::new();
    let mut events = Committer::new(b.until_caught_up(true).build().unwrap(), store.clone())
        .every(1)
        .interval(Duration::ZERO);
    let mut got = Vec::new();
    while let Some(event) = events.next().await {
        let event = event.unwrap();
        events.ack(&event);
        got.push(event);
    }
    events.close().await.unwrap();
    (got, store)
}

#[tokio::test(start_paused = true)]
async fn a_filtered_out_tail_is_saved_past_and_never_delivered() {
    let sim = scripted();
    let (all, _) = commit_all(builder(&sim)).await;
    let (got, store) = commit_all(builder(&sim).filter(kept)).await;
    assert!(
        got.iter().all(|e| kept(e)),
        "a dropped event reached the consumer"
    );
    let expected: Vec<&ChangeEvent> = all.iter().filter(|e| kept(e)).collect();
    assert_eq!(got.len(), 10);
    // Same events, same order, same position in their own shard.
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g.sequence_number(), e.sequence_number());
        assert_eq!(g.shard_id(), e.shard_id());
        assert_eq!(
            g.checkpoint().position(g.shard_id()),
            e.checkpoint().position(e.shard_id())
        );
    }
    // The last yielded event's checkpoint is behind the dropped tail; the saved one is not.
    let saved = store.load(&sim.stream_arn()).await.unwrap().unwrap();
    assert_ne!(&saved, got.last().unwrap().checkpoint());
    // A restart, even without the filter, delivers nothing old.
    let again = drain_ok(
        builder(&sim)
            .resume_from(saved)
            .until_caught_up(true)
            .build()
            .unwrap(),
    )
    .await;
    assert!(
        again.is_empty(),
        "{:?}",
        again.iter().map(pk_v).collect::<Vec<_>>()
    );
}

/// A live stream (no catch-up): once every yielded event is acknowledged, the committer's
/// timer saves past the dropped events that followed them; not before.
#[tokio::test(start_paused = true)]
async fn an_idle_stream_saves_past_dropped_events_once_everything_yielded_is_acked() {
    let sim = scripted();
    let store = MemoryStore::new();
    let stream = builder(&sim).filter(kept).build().unwrap();
    let mut events = Committer::new(stream, store.clone())
        .every(0)
        .interval(Duration::from_secs(1));
    let mut got = Vec::new();
    for _ in 0..10 {
        got.push(events.next().await.unwrap().unwrap());
    }
    // All but the last acknowledged: nothing past the last one may be saved.
    for event in &got[..9] {
        events.ack(event);
    }
    let idle = tokio::time::timeout(Duration::from_secs(10), events.next()).await;
    assert!(idle.is_err(), "{idle:?}");
    let saved = store.load(&sim.stream_arn()).await.unwrap().unwrap();
    assert_eq!(
        &saved,
        got[8].checkpoint(),
        "saved past an unacknowledged event"
    );
    events.ack(&got[9]);
    let idle = tokio::time::timeout(Duration::from_secs(10), events.next()).await;
    assert!(idle.is_err(), "{idle:?}");
    let saved = store.load(&sim.stream_arn()).await.unwrap().unwrap();
    drop(events);
    let again = builder(&sim).resume_from(saved).build().unwrap();
    let mut again = again;
    let extra = tokio::time::timeout(Duration::from_secs(10), again.next()).await;
    assert!(extra.is_err(), "old events delivered again: {extra:?}");
    // New writes still arrive, kept or dropped alike.
    sim.put_item(item("keep9", 100));
    let next = again.next().await.unwrap().unwrap();
    assert_eq!(pk_v(&next), ("keep9".to_owned(), 100));
}

#[derive(serde::Deserialize)]
struct Order {
    status: String,
}

/// A filter over images, through serde; and one over kinds.
#[tokio::test(start_paused = true)]
async fn filters_over_typed_images_and_kinds() {
    let sim = Simulator::builder().initial_shards(2).seed(5).build();
    let order = |id: &str, status: &str| {
        HashMap::from([
            ("pk".to_owned(), AttributeValue::S(id.to_owned())),
            ("status".to_owned(), AttributeValue::S(status.to_owned())),
        ])
    };
    for id in ["o1", "o2", "o3"] {
        sim.put_item(order(id, "PLACED"));
    }
    sim.put_item(order("o2", "PAID"));
    sim.put_item(order("o3", "PAID"));
    sim.put_item(order("o2", "SHIPPED"));
    sim.delete_item(key("o1"));
    sim.delete_item(key("o3"));
    let paid = |change: &Change| {
        change
            .new_image::<Order>()
            .ok()
            .flatten()
            .is_some_and(|o| o.status == "PAID")
    };
    let (got, _) = commit_all(builder(&sim).filter(paid)).await;
    let mut ids: Vec<String> = got
        .iter()
        .map(|e| e.keys::<HashMap<String, String>>().unwrap()["pk"].clone())
        .collect();
    ids.sort();
    assert_eq!(ids, ["o2", "o3"]);
    let (removes, _) = commit_all(builder(&sim).kinds([EventKind::Remove])).await;
    assert_eq!(removes.len(), 2);
    assert!(removes.iter().all(|e| e.kind() == EventKind::Remove));
    // Filters combine: both must keep an event.
    let (none, _) = commit_all(builder(&sim).kinds([EventKind::Remove]).filter(paid)).await;
    assert!(none.is_empty());
    let (modifies, _) = commit_all(builder(&sim).kinds([EventKind::Modify]).filter(paid)).await;
    assert_eq!(modifies.len(), 2);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random writes (each kept or dropped), splits and page sizes: the kept events are the
    /// unfiltered stream's kept events, each item's in order; and after acknowledging everything yielded
    /// the saved checkpoint resumes with nothing left to deliver.
    #[test]
    fn kept_events_are_unchanged_and_saves_reach_the_end(
        writes in proptest::collection::vec((0u8..4, any::<bool>(), proptest::bool::weighted(0.1)), 1..40),
        page in 1usize..5,
        seed in any::<u64>(),
    ) {
        paused_runtime().block_on(async {
            let sim = Simulator::builder().initial_shards(2).max_page(page).seed(seed).build();
            for (v, (k, keep, split)) in writes.iter().enumerate() {
                let prefix = if *keep { "keep" } else { "drop" };
                sim.put_item(item(&format!("{prefix}{k}"), v as u64));
                if *split {
                    sim.split(&open_shards(&sim)[0], 2);
                }
            }
            let (all, _) = commit_all(builder(&sim)).await;
            let (got, store) = commit_all(builder(&sim).filter(kept)).await;
            // The same events, each item's in the same order (shards are interleaved as
            // their pages arrive, which differs between two runs).
            let per_item = |events: Vec<(String, u64)>| {
                let mut items: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
                for (k, v) in events {
                    items.entry(k).or_default().push(v);
                }
                items
            };
            let expected = per_item(all.iter().filter(|e| kept(e)).map(pk_v).collect());
            let kept_got = per_item(got.iter().map(pk_v).collect());
            prop_assert_eq!(kept_got, expected);
            let saved = store.load(&sim.stream_arn()).await.unwrap();
            let mut resumed = builder(&sim).until_caught_up(true);
            if let Some(saved) = saved {
                resumed = resumed.resume_from(saved);
            }
            let again = drain_ok(resumed.filter(kept).build().unwrap()).await;
            prop_assert!(again.is_empty());
            // With the filter off, a restart delivers only dropped events the committer did
            // not see past: none, if anything at all was yielded.
            if !got.is_empty() {
                let saved = store.load(&sim.stream_arn()).await.unwrap().unwrap();
                let again = drain_ok(builder(&sim).resume_from(saved).until_caught_up(true).build().unwrap()).await;
                prop_assert!(again.is_empty(), "{:?}", again.iter().map(pk_v).collect::<Vec<_>>());
            }
            Ok(())
        })?;
    }
}

/// Through a lease table, saving each event's checkpoint by hand (no committer): a parent
/// shard whose last records are dropped still has its end saved once its last event's
/// checkpoint is (the children wait for that); and `ChangeStream::checkpoint` is past the
/// children's dropped tail, so the next process to take the shards delivers nothing old.
#[cfg(feature = "dynamodb-store")]
#[tokio::test(start_paused = true)]
async fn a_leased_stream_finishes_shards_whose_end_was_dropped() {
    let sim = Simulator::builder().initial_shards(1).seed(9).build();
    let table = dynamodb_stream::sim::MemoryLeaseTable::new();
    let writes = |names: &[&str], from: u64| {
        for (i, pk) in names.iter().enumerate() {
            sim.put_item(item(pk, from + i as u64));
        }
    };
    writes(&["keep0", "keep1", "drop0", "drop1"], 0);
    sim.split(&open_shards(&sim)[0], 2);
    writes(&["keep0", "keep1", "drop2", "drop3"], 10);
    let lease = table.lease_table("a");
    let mut a = builder(&sim)
        .filter(kept)
        .lease(lease.clone())
        .build()
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 4 {
        let next = tokio::time::timeout(Duration::from_secs(120), a.next()).await;
        let event = next.expect("the children were not read").unwrap().unwrap();
        lease.save(event.checkpoint()).await.unwrap();
        got.push(pk_v(&event));
    }
    let vs: Vec<u64> = got.iter().map(|(_, v)| *v).collect();
    assert_eq!(&vs[..2], [0, 1], "the parent's events first: {got:?}");
    let idle = tokio::time::timeout(Duration::from_secs(5), a.next()).await;
    assert!(idle.is_err(), "{idle:?}");
    lease.save(&a.checkpoint()).await.unwrap();
    drop(a);
    lease.close().await.unwrap();
    // Not with the filter either: the dropped events were saved past.
    let mut b = builder(&sim).lease(table.lease_table("b")).build().unwrap();
    let again = tokio::time::timeout(Duration::from_secs(60), b.next()).await;
    assert!(again.is_err(), "delivered again: {again:?}");
}

/// Through a lease table with a committer: the dropped tail is saved past by the committer.
#[cfg(feature = "dynamodb-store")]
#[tokio::test(start_paused = true)]
async fn a_leased_committer_saves_past_a_dropped_tail() {
    let sim = Simulator::builder().initial_shards(1).seed(9).build();
    let table = dynamodb_stream::sim::MemoryLeaseTable::new();
    for (v, pk) in ["keep0", "drop0", "keep1", "drop1", "drop2"]
        .iter()
        .enumerate()
    {
        sim.put_item(item(pk, v as u64));
    }
    sim.split(&open_shards(&sim)[0], 2);
    sim.put_item(item("drop3", 10));
    let consumer = |name: &str, filter: bool| {
        let lease = table.lease_table(name);
        let mut b = builder(&sim).lease(lease.clone());
        if filter {
            b = b.filter(kept);
        }
        Committer::new(b.build().unwrap(), lease)
            .every(1)
            .interval(Duration::from_millis(100))
    };
    let mut a = consumer("a", true);
    for _ in 0..2 {
        let event = a.next().await.unwrap().unwrap();
        a.ack(&event);
    }
    let idle = tokio::time::timeout(Duration::from_secs(5), a.next()).await;
    assert!(idle.is_err(), "{idle:?}");
    a.close().await.unwrap();
    let mut b = consumer("b", false);
    let again = tokio::time::timeout(Duration::from_secs(60), b.next()).await;
    assert!(again.is_err(), "delivered again: {again:?}");
}
