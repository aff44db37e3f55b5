//! Decoding: GetRecords pages into `ChangeEvent`s, both ways side by side, and typed images.
//!
//! The record conversion is internal, so it is measured through the public path, with the
//! SDK's share measured apart over the same calls (one shard, 10 pages of 1000 records of
//! about 200 bytes, current-thread runtime on the paused clock, the real SDK client over the
//! in-process simulator):
//! - `sdk_get_records`: DescribeStream, GetShardIterator, then GetRecords with the client
//!   directly, counting records: the SDK's request building, the simulator's answers and the
//!   SDK's JSON parsing, and nothing of this crate;
//! - `stream_sdk`: a fresh `ChangeStream` with `Decoding::Sdk` yielding the same 10,000 events
//!   (the path of the earlier rounds);
//! - `stream_raw`: the same with the default `Decoding::Raw`: the crate parses each page;
//! - `stream_sdk_typed`, `stream_raw_typed`: the two drains calling
//!   `event.new_image::<Order>()` on every event;
//! - `new_image_sdk`, `new_image_raw`, `keys_raw`: typed decoding alone, on collected events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Instant;

use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use criterion::{Criterion, Throughput, criterion_group};
use dynamodb_stream::sim::Simulator;
use dynamodb_stream::{ChangeEvent, ChangeStream};
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

/// The 10 GetRecords bodies of the backlog, as the simulator serves them.
fn page_bodies(sim: &Simulator) -> Vec<bytes::Bytes> {
    let call = |op: &str, body: serde_json::Value| {
        let (status, body) = sim.handle(op, body.to_string().as_bytes());
        assert_eq!(status, 200);
        body
    };
    let shard = &sim.shards()[0].shard_id;
    let start = serde_json::json!({
        "StreamArn": sim.stream_arn(), "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON",
    });
    let it: serde_json::Value = serde_json::from_slice(&call("GetShardIterator", start)).unwrap();
    let mut iterator = it["ShardIterator"].clone();
    let mut bodies = Vec::new();
    for _ in 0..EVENTS / 1000 {
        let body = call(
            "GetRecords",
            serde_json::json!({ "ShardIterator": iterator, "Limit": 1000 }),
        );
        let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
        iterator = page["NextShardIterator"].clone();
        bodies.push(body);
    }
    bodies
}

/// Drains `n` events from `stream`, decoding every new image into an `Order`.
async fn drain_typed(stream: ChangeStream, n: usize) -> usize {
    let mut stream = stream.take(n);
    let mut seen = 0;
    while let Some(event) = stream.next().await {
        let order: Option<Order> = event.expect("an event").new_image().expect("decodes");
        std::hint::black_box(order);
        seen += 1;
    }
    assert_eq!(seen, n, "the stream ended early");
    seen
}

fn typed_all(events: &[ChangeEvent]) {
    for event in events {
        let order: Option<Order> = event.new_image().expect("decodes");
        std::hint::black_box(order);
    }
}

async fn collect(stream: ChangeStream) -> Vec<ChangeEvent> {
    stream
        .take(EVENTS)
        .map(|e| e.expect("an event"))
        .collect()
        .await
}

fn decode(c: &mut Criterion) {
    let rt = support::paused_runtime();
    let sim = rt.block_on(async { support::backlog(1, EVENTS, false) });
    // Consumers are built inside the runtime: they read tokio's clock.
    let sdk_events = rt.block_on(async { collect(support::sdk_consumer(&sim)).await });
    let raw_events = rt.block_on(async { collect(support::consumer(&sim)).await });

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
    group.bench_function("stream_sdk", |b| {
        support::bench_drain_of(b, &rt, &sim, EVENTS, support::sdk_consumer);
    });
    group.bench_function("stream_raw", |b| {
        support::bench_drain_of(b, &rt, &sim, EVENTS, support::consumer);
    });
    for (name, make) in [
        (
            "stream_sdk_typed",
            support::sdk_consumer as fn(&Simulator) -> ChangeStream,
        ),
        ("stream_raw_typed", support::consumer),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let sim = sim.clone();
                async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        drain_typed(make(&sim), EVENTS).await;
                    }
                    start.elapsed()
                }
            });
        });
    }
    group.bench_function("new_image_sdk", |b| b.iter(|| typed_all(&sdk_events)));
    group.bench_function("new_image_raw", |b| b.iter(|| typed_all(&raw_events)));
    group.bench_function("keys_raw", |b| {
        b.iter(|| {
            for event in &raw_events {
                let key: Key = event.keys().expect("decodes");
                std::hint::black_box(key);
            }
        });
    });
    group.finish();
}

criterion_group!(benches, decode);

/// The workloads of `BENCH_PROFILE`, each run `BENCH_PROFILE_ITERS` times.
const MODES: &str = "sdk, stream, raw, typed, raw-typed, raw-stream-typed or json";

/// `BENCH_PROFILE=<mode> BENCH_PROFILE_ITERS=n`: run one workload `n` times and exit, for
/// instruction counts (`valgrind --tool=callgrind`): the difference between two counts of
/// iterations, divided by the events, is the per-event cost without the setup.
/// - `sdk`: the SDK client alone; `stream`: a `ChangeStream` with `Decoding::Sdk` (what this
///   mode measured in the earlier rounds); `raw`: one with the default `Decoding::Raw`;
/// - `typed`, `raw-typed`: `new_image::<Order>()` on collected events of each decoding;
/// - `raw-stream-typed`: the `raw` drain calling `new_image::<Order>()` on every event;
/// - `json`: serde_json skipping the same page bodies (`IgnoredAny`): the floor of any
///   serde_json parse of them.
fn profile(mode: &str) {
    let iters: usize = std::env::var("BENCH_PROFILE_ITERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let rt = support::paused_runtime();
    rt.block_on(async {
        let sim = support::backlog(1, EVENTS, false);
        let collected = match mode {
            "typed" => collect(support::sdk_consumer(&sim)).await,
            "raw-typed" => collect(support::consumer(&sim)).await,
            _ => Vec::new(),
        };
        let bodies = if mode == "json" {
            page_bodies(&sim)
        } else {
            Vec::new()
        };
        for _ in 0..iters {
            match mode {
                "sdk" => drop(sdk_only(&sim).await),
                "stream" => drop(support::drain_stream(support::sdk_consumer(&sim), EVENTS).await),
                "raw" => drop(support::drain_stream(support::consumer(&sim), EVENTS).await),
                "typed" | "raw-typed" => typed_all(&collected),
                "raw-stream-typed" => drop(drain_typed(support::consumer(&sim), EVENTS).await),
                "json" => {
                    for body in &bodies {
                        let parsed: serde::de::IgnoredAny = serde_json::from_slice(body).unwrap();
                        std::hint::black_box(parsed);
                    }
                }
                other => panic!("unknown BENCH_PROFILE {other:?}: {MODES}"),
            }
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
