//! Shard topologies: many shards, split trees, rollover chains, orphans, late children.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::time::Duration;

use dynamodb_stream::sim::{RecordKind, SimRecord, Simulator};
use dynamodb_stream::status::ShardState;
use dynamodb_stream::{ChangeStream, Readers};
use futures::StreamExt;
use support::sim::*;

#[tokio::test(start_paused = true)]
async fn more_than_a_hundred_shards_are_all_read() {
    let sim = Simulator::builder()
        .initial_shards(250)
        .trailing_empty_listing_page(true)
        .seed(2)
        .build();
    for v in 0..1000u64 {
        sim.put_item(item(&format!("k{v}"), v));
    }
    let stream = builder(&sim).until_caught_up(true).build().unwrap();
    let events = drain_ok(stream).await;
    let vs: HashSet<u64> = events.iter().map(|e| pk_v(e).1).collect();
    assert_eq!(vs.len(), 1000);
    let shards: HashSet<&str> = events.iter().map(|e| e.shard_id()).collect();
    assert!(shards.len() > 200, "only {} shards delivered", shards.len());
    assert!(sim.calls().describe_stream >= 3, "listing was paginated");
}

#[tokio::test(start_paused = true)]
async fn a_tree_of_splits_is_read_parents_first() {
    let sim = Simulator::builder()
        .initial_shards(1)
        .max_page(4)
        .seed(3)
        .build();
    let mut v = 0u64;
    let mut level = vec![sim.shards()[0].shard_id.clone()];
    for _depth in 0..3 {
        for _ in 0..12 {
            sim.put_item(item(&format!("k{}", v % 5), v));
            v += 1;
        }
        level = level.iter().flat_map(|s| sim.split(s, 2)).collect();
    }
    for _ in 0..12 {
        sim.put_item(item(&format!("k{}", v % 5), v));
        v += 1;
    }
    let events = drain_ok(builder(&sim).until_caught_up(true).build().unwrap()).await;
    assert_eq!(events.len() as u64, v);
    assert_per_key_order(&events);
    assert_parents_first(&sim, &events);
    assert_eq!(level.len(), 8);
}

#[tokio::test(start_paused = true)]
async fn a_rollover_chain_is_followed_to_its_end() {
    let sim = Simulator::builder().initial_shards(1).seed(4).build();
    let mut shard = sim.shards()[0].shard_id.clone();
    for v in 0..20u64 {
        sim.put_item(item("only", v));
        if v % 2 == 1 {
            shard = sim.split(&shard, 1).remove(0);
        }
    }
    let events = drain_ok(builder(&sim).until_caught_up(true).build().unwrap()).await;
    let vs: Vec<u64> = events.iter().map(|e| pk_v(e).1).collect();
    assert_eq!(vs, (0..20).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn a_child_whose_parent_aged_out_is_a_root() {
    let sim = Simulator::builder().initial_shards(1).seed(5).build();
    let parent = sim.shards()[0].shard_id.clone();
    sim.put_item(item("a", 0));
    let child = sim.split(&parent, 1).remove(0);
    sim.put_item(item("a", 1));
    sim.age_out(&parent);
    let events = drain_ok(builder(&sim).until_caught_up(true).build().unwrap()).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].shard_id(), child);
}

#[tokio::test(start_paused = true)]
async fn children_listed_late_are_found_and_read() {
    let sim = Simulator::builder().initial_shards(1).seed(6).build();
    let parent = sim.shards()[0].shard_id.clone();
    sim.put_item(item("a", 0));
    let children = sim.split_hidden(&parent, 2, Duration::from_secs(20));
    for v in 1..9 {
        sim.put_item(item(&format!("k{v}"), v));
    }
    let mut stream = builder(&sim).build().unwrap();
    let events = take(&mut stream, 9).await;
    assert_eq!(events[0].shard_id(), parent);
    assert!(
        events[1..]
            .iter()
            .all(|e| children.iter().any(|c| c == e.shard_id()))
    );
    let status = stream.status();
    let parent_state = status.shards.iter().find(|s| s.shard_id == parent).unwrap();
    assert_eq!(parent_state.state, ShardState::Finished);
}

#[tokio::test(start_paused = true)]
async fn a_slow_consumer_keeps_the_read_ahead_bounded() {
    let sim = Simulator::builder()
        .initial_shards(4)
        .max_page(10)
        .seed(8)
        .build();
    for v in 0..400u64 {
        sim.put_item(item(&format!("k{v}"), v));
    }
    let mut stream = builder(&sim).build().unwrap();
    assert_read_ahead_bounded(&sim, &mut stream, 4).await;
    let _ = stream.next().await;
}

#[tokio::test(start_paused = true)]
async fn idle_shards_are_polled_gently() {
    let sim = Simulator::builder().initial_shards(1).seed(10).build();
    let mut stream = dynamodb_stream::ChangeStream::builder(sim.client(), sim.stream_arn())
        .build()
        .unwrap();
    let idle = tokio::time::timeout(Duration::from_secs(60), stream.next()).await;
    assert!(idle.is_err());
    let calls = sim.calls().get_records;
    // Defaults: 250 ms doubling to 2 s: about 30 calls in a minute, never a busy loop.
    assert!(
        (20..=40).contains(&calls),
        "{calls} GetRecords calls in an idle minute"
    );
}

#[tokio::test(start_paused = true)]
async fn catch_up_settles_many_closed_shards_with_one_listing() {
    let sim = Simulator::builder().initial_shards(64).seed(13).build();
    for v in 0..640u64 {
        sim.put_item(item(&format!("k{v}"), v));
    }
    for shard in sim.shards() {
        sim.close_shard(&shard.shard_id);
    }
    let started = tokio::time::Instant::now();
    let events = drain_ok(builder(&sim).until_caught_up(true).build().unwrap()).await;
    assert_eq!(events.len(), 640);
    // Finished parents are settled together, not one look-up (and one pacing wait) each.
    assert!(sim.calls().describe_stream <= 6, "{:?}", sim.calls());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// Catch-up with a closed shard finished early and an open one read for longer: the look-up
/// for the closed shard's children waits for the open shard, which ends without a final page
/// (three empty pages). The run must still end, having read both.
#[tokio::test(start_paused = true)]
async fn catch_up_ends_when_the_last_reader_ends_without_a_page() {
    let sim = Simulator::builder()
        .initial_shards(2)
        .max_page(10)
        .seed(31)
        .build();
    let shards = open_shards(&sim);
    let insert = |shard: &str, pk: String, v: u64| {
        let record = SimRecord::new(RecordKind::Insert, key(&pk)).with_new_image(item(&pk, v));
        sim.append(shard, record).unwrap();
    };
    for v in 0..3u64 {
        insert(&shards[0], format!("a{v}"), v);
    }
    for v in 0..200u64 {
        insert(&shards[1], format!("b{v}"), v);
    }
    sim.close_shard(&shards[0]);
    for readers in [Readers::Inline, Readers::Spawned] {
        let stream = builder(&sim)
            .until_caught_up(true)
            .readers(readers)
            .build()
            .unwrap();
        let started = tokio::time::Instant::now();
        let events = drain_ok(stream).await;
        assert_eq!(events.len(), 203, "{readers:?}");
        // Not stuck until something else happened to wake it.
        let took = started.elapsed();
        assert!(took < Duration::from_secs(10), "{readers:?}: {took:?}");
    }
}

/// A closed shard that answers empty pages before its end (as the service may) is read on
/// at once, not at the idle back-off: no new data can arrive there, so waiting would only
/// delay its children. At the idle back-off, these took 3.75 s of the paused clock.
#[tokio::test(start_paused = true)]
async fn a_closed_shards_empty_pages_do_not_delay_its_children() {
    let sim = Simulator::builder().initial_shards(1).seed(4).build();
    let parent = sim.shards()[0].shard_id.clone();
    sim.put_item(item("k0", 0));
    let children = sim.split(&parent, 2);
    sim.empty_pages(&parent, 20);
    for v in 1..5u64 {
        sim.put_item(item(&format!("k{v}"), v));
    }
    let started = tokio::time::Instant::now();
    let mut stream = builder(&sim).build().unwrap();
    let events = take(&mut stream, 5).await;
    assert_parents_first(&sim, &events);
    assert!(
        events
            .iter()
            .skip(1)
            .all(|e| children.iter().any(|c| c == e.shard_id()))
    );
    // The start-up listing's pacing is the only wait left.
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the children's records came {:?} after the start",
        started.elapsed()
    );
}

/// A consumer that sleeps while 64 shards hold a backlog: the memory budget, not the shard
/// count, bounds the pages fetched (a call reserves 1 MiB until its page arrives, then keeps
/// what the page takes); once it reads on, every shard gets its turn and nothing is lost.
#[tokio::test(start_paused = true)]
async fn the_memory_budget_bounds_the_pages_a_sleeping_consumer_holds() {
    use dynamodb_stream::sim::AttributeValue;
    const MIB: usize = 1 << 20;
    let sim = Simulator::builder().initial_shards(64).seed(5).build();
    let records = 64 * 100;
    for v in 0..records {
        let mut image = item(&format!("k{v}"), v);
        image.insert("payload".into(), AttributeValue::S("x".repeat(1000)));
        sim.put_item(image);
    }
    let mut stream = builder(&sim).memory_budget(2 * MIB).build().unwrap();
    let first = stream.next().await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let memory = stream.status().memory;
    assert_eq!(memory.budget, 2 * MIB);
    assert!(memory.reserved <= memory.budget, "{memory:?}");
    // Pages of about 100 records of 1 kB: 2 MiB holds the one being delivered, the ones that
    // fit in what a call's reservation leaves, and one call in flight; not one per shard.
    let fetched = sim.calls().get_records;
    assert!(
        fetched <= 12,
        "{fetched} pages fetched for a sleeping consumer"
    );
    let mut events = vec![first];
    events.extend(take(&mut stream, records as usize - 1).await);
    assert_per_key_order(&events);
    let shards: HashSet<&str> = events.iter().map(|e| e.shard_id()).collect();
    assert_eq!(shards.len(), 64, "every shard delivered");
    assert!(stream.status().memory.reserved <= 2 * MIB);
}

#[tokio::test]
async fn a_memory_budget_below_one_page_is_refused() {
    let sim = Simulator::builder().build();
    let err = builder(&sim).memory_budget(1000).build().unwrap_err();
    assert_eq!(err.kind(), dynamodb_stream::ErrorKind::Config);
    assert!(err.to_string().contains("memory budget"), "{err}");
}

/// The first listing of a 1000-shard stream takes ten paced `DescribeStream` pages (200 ms
/// apart by default): the shards of each page are read as it arrives, so the first record
/// comes after one page, not after all ten.
#[tokio::test(start_paused = true)]
async fn the_first_record_of_a_thousand_shards_comes_after_one_listing_page() {
    let sim = Simulator::builder().initial_shards(1000).seed(6).build();
    for v in 0..2000u64 {
        sim.put_item(item(&format!("k{v}"), v));
    }
    let started = tokio::time::Instant::now();
    let mut stream = ChangeStream::builder(sim.client(), sim.stream_arn())
        .start(dynamodb_stream::StartPosition::TrimHorizon)
        .build()
        .unwrap();
    let _first = stream.next().await.unwrap().unwrap();
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_millis(300),
        "the first record came after {waited:?}"
    );
    let rest = take(&mut stream, 1999).await;
    assert_eq!(rest.len(), 1999);
}

/// Early pages are read before the listing ends, and lineage order still holds: children on
/// a later page than their parents, parents split across pages, all read parents first.
#[tokio::test(start_paused = true)]
async fn shards_read_before_the_listing_ends_keep_lineage_order() {
    let sim = Simulator::builder()
        .initial_shards(150)
        .max_page(10)
        .seed(7)
        .build();
    let mut v = 0u64;
    for _ in 0..3 {
        for _ in 0..600 {
            sim.put_item(item(&format!("k{}", v % 300), v));
            v += 1;
        }
        let open = open_shards(&sim);
        for shard in open.iter().step_by(7) {
            sim.split(shard, 2);
        }
    }
    let events = drain_ok(builder(&sim).until_caught_up(true).build().unwrap()).await;
    assert_eq!(events.len() as u64, v);
    assert_per_key_order(&events);
    assert_parents_first(&sim, &events);
}
