//! `StartPosition::AtTimestamp`: every shard read from its trim horizon, records created
//! before the instant skipped without being delivered, at second precision; checkpoints taken
//! before anything was delivered resume with the same skip; bad instants refused by `build()`.

#![cfg(all(feature = "test-util", feature = "dynamodb-store"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dynamodb_stream::sim::Simulator;
use dynamodb_stream::{Checkpoint, ErrorKind, ShardPosition, StartPosition};
use support::sim::{builder, drain_ok, item, pk_v, take};

/// A whole second well after the epoch: creation times in these tests are relative to it.
const T: u64 = 1_800_000_000;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Writes `v` to each key, stamped `at` seconds after `T` (negative: before).
fn write(sim: &Simulator, keys: &[&str], offset: i64, v: u64) {
    sim.set_creation_time(Some(at(T.saturating_add_signed(offset))));
    for pk in keys {
        sim.put_item(item(pk, v));
    }
}

const KEYS: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];

/// Old records (before `T`) in the roots, split shards and their children; records at `T` and
/// after in the children and grandchildren. `v` is the record's second offset plus 10 (so
/// every record's creation second is known from its event), times 10, plus a counter.
fn scripted() -> Simulator {
    let sim = Simulator::builder()
        .initial_shards(2)
        .max_page(3)
        .seed(7)
        .build();
    write(&sim, &KEYS, -5, 50);
    write(&sim, &KEYS, -2, 80);
    for shard in support::sim::open_shards(&sim) {
        sim.split(&shard, 2);
    }
    write(&sim, &KEYS, -1, 90);
    write(&sim, &KEYS, 0, 100);
    write(&sim, &KEYS, 0, 101);
    let first = support::sim::open_shards(&sim);
    sim.split(&first[0], 2);
    write(&sim, &KEYS, 1, 110);
    write(&sim, &KEYS, 3, 130);
    sim.set_creation_time(None);
    sim
}

/// `(pk, v)` of every event, and checks each key's versions arrive in the order written.
async fn delivered(start: StartPosition, sim: &Simulator) -> Vec<(String, u64)> {
    let events = drain_ok(
        builder(sim)
            .start(start)
            .until_caught_up(true)
            .build()
            .unwrap(),
    )
    .await;
    let got: Vec<(String, u64)> = events.iter().map(pk_v).collect();
    let mut last: HashMap<&str, u64> = HashMap::new();
    for (pk, v) in &got {
        let before = last.insert(pk, *v);
        assert!(before < Some(*v), "{pk}: {before:?} then {v}: {got:?}");
    }
    got
}

/// Every key written with each of `versions`, sorted.
fn expected(versions: &[u64]) -> Vec<(String, u64)> {
    let mut all: Vec<(String, u64)> = KEYS
        .iter()
        .flat_map(|pk| versions.iter().map(|v| (pk.to_string(), *v)))
        .collect();
    all.sort();
    all
}

fn sorted(mut got: Vec<(String, u64)>) -> Vec<(String, u64)> {
    got.sort();
    got
}

#[tokio::test(start_paused = true)]
async fn records_before_the_instant_are_skipped_on_every_shard_across_splits() {
    let sim = scripted();
    let got = delivered(StartPosition::AtTimestamp(at(T)), &sim).await;
    assert_eq!(sorted(got), expected(&[100, 101, 110, 130]));
    let all = delivered(StartPosition::TrimHorizon, &sim).await;
    assert_eq!(sorted(all), expected(&[50, 80, 90, 100, 101, 110, 130]));
    // Every shard was read, the roots too.
    assert!(sim.shards().len() >= 8, "{:?}", sim.shards());
}

/// Creation times are whole seconds: the second that holds the instant is delivered whole.
#[tokio::test(start_paused = true)]
async fn the_instant_is_compared_at_second_precision() {
    let sim = scripted();
    let within = at(T) + Duration::from_millis(999);
    let got = delivered(StartPosition::AtTimestamp(within), &sim).await;
    assert_eq!(sorted(got), expected(&[100, 101, 110, 130]));
    let next = delivered(StartPosition::AtTimestamp(at(T + 1)), &sim).await;
    assert_eq!(sorted(next), expected(&[110, 130]));
    let before = delivered(StartPosition::AtTimestamp(at(T - 1)), &sim).await;
    assert_eq!(sorted(before), expected(&[90, 100, 101, 110, 130]));
    let later = delivered(StartPosition::AtTimestamp(at(T + 10)), &sim).await;
    assert!(later.is_empty(), "{later:?}");
}

/// A checkpoint cut before anything was delivered (right after `build()`, and after reading
/// nothing but old records) holds the instant: resuming from its text skips the same records.
#[tokio::test(start_paused = true)]
async fn a_checkpoint_taken_before_any_delivery_resumes_with_the_same_skip() {
    let sim = Simulator::builder().initial_shards(3).seed(8).build();
    write(&sim, &KEYS, -3, 70);
    let start = StartPosition::AtTimestamp(at(T) + Duration::from_millis(250));
    let mut stream = builder(&sim).start(start).build().unwrap();
    let at_build = stream.checkpoint();
    assert!(
        at_build.to_string().contains(&format!(";*=t{T};")),
        "{at_build}"
    );
    // Reads every shard, delivers nothing: all its records are older.
    let quiet = tokio::time::timeout(
        Duration::from_secs(5),
        futures::StreamExt::next(&mut stream),
    );
    assert!(quiet.await.is_err(), "an old record was delivered");
    let after_reading = stream.checkpoint();
    assert!(sim.calls().get_records >= 3);
    assert_eq!(
        after_reading.position("any shard"),
        Some(&ShardPosition::LatestSince(at(T)))
    );
    drop(stream);
    write(&sim, &KEYS, 0, 100);
    for token in [at_build, after_reading] {
        let token: Checkpoint = token.to_string().parse().unwrap();
        let resumed = builder(&sim)
            .resume_from(token)
            .until_caught_up(true)
            .build()
            .unwrap();
        let got: Vec<(String, u64)> = drain_ok(resumed).await.iter().map(pk_v).collect();
        assert_eq!(sorted(got), expected(&[100]));
    }
}

/// Once a shard delivered its first record at or after the instant, its checkpoint is a
/// sequence number like any other: resuming goes on right after it.
#[tokio::test(start_paused = true)]
async fn a_checkpoint_after_a_delivery_resumes_after_it() {
    let sim = scripted();
    let start = StartPosition::AtTimestamp(at(T));
    let mut stream = builder(&sim).start(start).build().unwrap();
    let first = take(&mut stream, 5).await;
    drop(stream);
    let token = first[4].checkpoint().clone();
    let rest = drain_ok(
        builder(&sim)
            .resume_from(token)
            .until_caught_up(true)
            .build()
            .unwrap(),
    )
    .await;
    let got: Vec<(String, u64)> = first.iter().chain(&rest).map(pk_v).collect();
    assert_eq!(sorted(got), expected(&[100, 101, 110, 130]));
}

#[tokio::test(start_paused = true)]
async fn build_refuses_instants_out_of_range_and_lease_tables() {
    let sim = Simulator::new();
    let far = UNIX_EPOCH + Duration::from_secs(253_402_300_800);
    let before_epoch = UNIX_EPOCH - Duration::from_secs(1);
    for t in [far, before_epoch] {
        let err = builder(&sim)
            .start(StartPosition::AtTimestamp(t))
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
        assert!(err.to_string().contains("start timestamp"), "{err}");
    }
    let last = UNIX_EPOCH + Duration::from_secs(253_402_300_799);
    assert!(
        builder(&sim)
            .start(StartPosition::AtTimestamp(last))
            .build()
            .is_ok()
    );
    let table = dynamodb_stream::sim::MemoryLeaseTable::new();
    let err = builder(&sim)
        .start(StartPosition::AtTimestamp(at(T)))
        .lease(table.lease_table("w"))
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("lease table"), "{err}");
}
