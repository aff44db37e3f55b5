//! Decoding: SDK records into `ChangeEvent`s, and typed images out of events.
//!
//! The record conversion is internal, so it is measured through the public path and the SDK's
//! share is measured apart, over the same calls (one shard, 10 pages of 1000 records of about
//! 200 bytes, current-thread runtime on the paused clock):
//! - `sdk_get_records`: DescribeStream, GetShardIterator, then GetRecords with the client
//!   directly, counting records: the SDK's request building, the simulator's answers and the
//!   SDK's JSON parsing, and nothing of this crate;
//! - `change_stream`: a fresh `ChangeStream` yielding the same 10,000 events;
//! - the difference per event is the crate's own work (conversion, merge, checkpoint token);
//! - `new_image_typed`: `event.new_image::<Order>()` on every event (serde_dynamo), and
//!   `keys_typed`: `event.keys::<Key>()`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Instant;

use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use criterion::{Criterion, Throughput, criterion_group};
use dynamodb_stream::ChangeEvent;
use dynamodb_stream::sim::Simulator;
use futures::StreamExt;
use serde::Deserialize;

const EVENTS: usize = 10_000;

#[derive(Deserialize)]
#[allow(dead_code)]
struct Order {
    pk: String,
    v: u64,
    payload: String,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Key {
    pk: String,
}

/// The same calls a consumer of one shard makes, straight through the SDK client.
async fn sdk_only(sim: &Simulator) -> usize {
    let client = sim.client();
    let arn = sim.stream_arn();
    let described = client
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .unwrap();
    let shard = described.stream_description().unwrap().shards()[0]
        .shard_id()
        .unwrap()
        .to_owned();
    let mut iterator = client
        .get_shard_iterator()
        .stream_arn(&arn)
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator;
    let mut seen = 0;
    while seen < EVENTS {
        let page = client
            .get_records()
            .set_shard_iterator(iterator)
            .limit(1000)
            .send()
            .await
            .unwrap();
        seen += page.records().len();
        iterator = page.next_shard_iterator;
        std::hint::black_box(page.records);
    }
    seen
}

fn decode(c: &mut Criterion) {
    let rt = support::paused_runtime();
    let sim = rt.block_on(async { support::backlog(1, EVENTS, false) });
    let events: Vec<ChangeEvent> = rt.block_on(async {
        support::consumer(&sim)
            .take(EVENTS)
            .map(|e| e.expect("an event"))
            .collect()
            .await
    });

    let mut group = support::drain_group(c, "decode", 20);
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("sdk_get_records", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let sim = sim.clone();
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    assert_eq!(sdk_only(&sim).await, EVENTS);
                }
                start.elapsed()
            }
        });
    });
    group.bench_function("change_stream", |b| {
        support::bench_drain(b, &rt, &sim, EVENTS);
    });
    group.bench_function("new_image_typed", |b| {
        b.iter(|| {
            for event in &events {
                let order: Option<Order> = event.new_image().expect("decodes");
                std::hint::black_box(order);
            }
        });
    });
    group.bench_function("keys_typed", |b| {
        b.iter(|| {
            for event in &events {
                let key: Key = event.keys().expect("decodes");
                std::hint::black_box(key);
            }
        });
    });
    group.finish();
}

criterion_group!(benches, decode);

/// `BENCH_PROFILE=sdk|stream|typed BENCH_PROFILE_ITERS=n`: run one workload `n` times and exit,
/// for instruction counts (`valgrind --tool=callgrind`): the difference between two counts
/// of iterations, divided by the events, is the per-event cost without the setup.
fn profile(mode: &str) {
    let iters: usize = std::env::var("BENCH_PROFILE_ITERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let rt = support::paused_runtime();
    rt.block_on(async {
        let sim = support::backlog(1, EVENTS, false);
        match mode {
            "sdk" => {
                for _ in 0..iters {
                    sdk_only(&sim).await;
                }
            }
            "stream" => {
                for _ in 0..iters {
                    support::drain(&sim, EVENTS).await;
                }
            }
            "typed" => {
                let events: Vec<ChangeEvent> = support::consumer(&sim)
                    .take(EVENTS)
                    .map(|e| e.expect("an event"))
                    .collect()
                    .await;
                for _ in 0..iters {
                    for event in &events {
                        let order: Option<Order> = event.new_image().expect("decodes");
                        std::hint::black_box(order);
                    }
                }
            }
            other => panic!("unknown BENCH_PROFILE {other:?}: sdk, stream or typed"),
        }
    });
    println!(
        "profiled {mode} x {iters}: {} events (ChangeEvent is {} bytes, the SDK's Record {})",
        iters * EVENTS,
        std::mem::size_of::<ChangeEvent>(),
        std::mem::size_of::<aws_sdk_dynamodbstreams::types::Record>(),
    );
}

fn main() {
    if let Ok(mode) = std::env::var("BENCH_PROFILE") {
        return profile(&mode);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
