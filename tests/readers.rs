//! Shard readers on their own tasks (`Readers::Spawned`, the default on a multi-threaded
//! runtime): the same order, the same read-ahead bound, errors delivered, and no task left
//! running once the stream is dropped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::time::Duration;

use dynamodb_stream::sim::Simulator;
use dynamodb_stream::{ErrorKind, Readers};
use futures::StreamExt;
use support::sim::*;

/// A tree of splits written in rounds: 3 roots, each split twice, with records in every
/// generation. Returns the records written, in order.
fn split_tree(sim: &Simulator, rounds: u64, per_round: u64) -> Vec<(String, u64)> {
    let mut written = Vec::new();
    for round in 0..rounds {
        for i in 0..per_round {
            let v = round * per_round + i;
            let pk = format!("k{}", v % 17);
            sim.put_item(item(&pk, v));
            written.push((pk, v));
        }
        if round + 1 < rounds {
            for shard in open_shards(sim) {
                sim.split(&shard, if round % 2 == 0 { 2 } else { 1 });
            }
        }
    }
    written
}

fn assert_exactly(
    sim: &Simulator,
    events: &[dynamodb_stream::ChangeEvent],
    written: &[(String, u64)],
) {
    let got: Vec<(String, u64)> = events.iter().map(pk_v).collect();
    assert_eq!(
        got.iter().collect::<HashSet<_>>().len(),
        got.len(),
        "duplicates delivered"
    );
    let mut sorted = got;
    sorted.sort_by_key(|(_, v)| *v);
    assert_eq!(sorted, written, "not every record delivered");
    assert_per_key_order(events);
    assert_parents_first(sim, events);
}

/// The default on a multi-threaded runtime, with real threads and the real clock: every record
/// once, parents before children, each key in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_readers_keep_lineage_and_key_order_on_real_threads() {
    let sim = Simulator::builder()
        .initial_shards(3)
        .max_page(7)
        .seed(21)
        .build();
    let written = split_tree(&sim, 4, 150);
    let stream = builder(&sim).until_caught_up(true).build().unwrap();
    let events = tokio::time::timeout(Duration::from_secs(120), drain_ok(stream))
        .await
        .expect("the stream did not end");
    assert_exactly(&sim, &events, &written);
}

/// Forced onto tasks on a current-thread runtime, under paused time, faults included: the same
/// guarantees, deterministically.
#[tokio::test(start_paused = true)]
async fn spawned_readers_on_one_thread_survive_faults() {
    use dynamodb_stream::sim::{Fault, Operation};
    let sim = Simulator::builder()
        .initial_shards(2)
        .max_page(5)
        .seed(22)
        .build();
    let written = split_tree(&sim, 3, 60);
    sim.inject(Operation::GetRecords, Fault::InternalServerError, 3);
    sim.inject(Operation::GetRecords, Fault::ExpiredIterator, 2);
    sim.inject(Operation::GetShardIterator, Fault::LimitExceeded, 2);
    let stream = builder(&sim)
        .readers(Readers::Spawned)
        .until_caught_up(true)
        .build()
        .unwrap();
    let events = drain_ok(stream).await;
    assert_exactly(&sim, &events, &written);
}

/// A reader on its own task still reads a page only when the stream asks for one: a consumer
/// that stops polling stops the readers.
#[tokio::test(start_paused = true)]
async fn spawned_readers_keep_the_read_ahead_bounded() {
    let sim = Simulator::builder()
        .initial_shards(4)
        .max_page(10)
        .seed(23)
        .build();
    for v in 0..400u64 {
        sim.put_item(item(&format!("k{v}"), v));
    }
    let mut stream = builder(&sim).readers(Readers::Spawned).build().unwrap();
    assert_read_ahead_bounded(&sim, &mut stream, 4).await;
    // And the stream goes on from where it stopped.
    let rest = take(&mut stream, 399).await;
    assert_eq!(rest.len(), 399);
}

/// Dropping the stream stops its reader tasks, even those waiting out a poll interval.
#[tokio::test(start_paused = true)]
async fn dropping_the_stream_stops_its_reader_tasks() {
    let sim = Simulator::builder().initial_shards(3).seed(24).build();
    sim.put_item(item("k", 1));
    let mut stream = builder(&sim).readers(Readers::Spawned).build().unwrap();
    let _ = take(&mut stream, 1).await;
    // Let the idle shards poll a few times, then drop the consumer.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(sim.calls().get_records > 3);
    drop(stream);
    tokio::task::yield_now().await;
    let calls = sim.calls();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(sim.calls(), calls, "a reader kept calling after the drop");
}

/// An error in a spawned reader reaches the consumer, typed, and ends the stream.
#[tokio::test(start_paused = true)]
async fn errors_of_spawned_readers_reach_the_consumer() {
    let sim = Simulator::builder().initial_shards(1).seed(25).build();
    for v in 0..6 {
        sim.put_item(item("k", v));
    }
    let mut stream = builder(&sim).readers(Readers::Spawned).build().unwrap();
    let seen = take(&mut stream, 2).await;
    drop(stream);
    let shard = seen[1].shard_id().to_owned();
    sim.trim_all(&shard);
    let err = error_of(
        builder(&sim)
            .readers(Readers::Spawned)
            .resume_from(seen[1].checkpoint().clone()),
    )
    .await;
    assert_eq!(err.kind(), ErrorKind::TrimmedData);
    assert_eq!(err.shard_id(), Some(shard.as_str()));
    let mut again = builder(&sim)
        .readers(Readers::Spawned)
        .resume_from(seen[1].checkpoint().clone())
        .build()
        .unwrap();
    assert!(matches!(again.next().await, Some(Err(_))));
    assert!(
        again.next().await.is_none(),
        "the stream ends after its error"
    );
}
