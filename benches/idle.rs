//! Idle cost: what a consumer with default settings spends on shards that receive nothing.
//!
//! On tokio's paused clock (virtual time runs as fast as the CPU allows), a `ChangeStream`
//! over N open, empty shards runs one virtual minute to settle (listing, first iterators, idle
//! backoff to its 2 s cap), then:
//! - `idle/virtual_10s/N` (criterion): the wall time, on one core, to run 10 more virtual
//!   seconds: the CPU an idle consumer of N shards burns per 10 s (× 6 for a minute;
//!   `Throughput::Elements(N)`);
//! - printed after: API calls per idle shard per minute, counted by the simulator over two
//!   virtual minutes, per operation, and the CPU time those two minutes took.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group};
use dynamodb_stream::ChangeStream;
use dynamodb_stream::sim::Simulator;
use futures::StreamExt;
use tokio::sync::Mutex;

const MINUTE: Duration = Duration::from_secs(60);
const STEP: Duration = Duration::from_secs(10);
const COUNTED: u32 = 2;

/// Runs the stream for `d` of virtual time; it must yield nothing.
async fn idle_for(stream: &mut ChangeStream, d: Duration) {
    let next = tokio::time::timeout(d, stream.next()).await;
    assert!(next.is_err(), "an idle stream yielded {next:?}");
}

fn idle(c: &mut Criterion) {
    let rt = support::paused_runtime();
    let mut group = c.benchmark_group("idle");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    let mut counts = Vec::new();
    for shards in [1usize, 100, 1000] {
        let (sim, stream) = rt.block_on(async {
            let sim = Simulator::builder().initial_shards(shards).build();
            let mut stream = ChangeStream::builder(sim.client(), sim.stream_arn())
                .build()
                .expect("a valid consumer");
            idle_for(&mut stream, MINUTE).await;
            (sim, Arc::new(Mutex::new(stream)))
        });
        group.throughput(Throughput::Elements(shards as u64));
        group.bench_function(BenchmarkId::new("virtual_10s", shards), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let stream = stream.clone();
                async move {
                    let mut stream = stream.lock().await;
                    let start = Instant::now();
                    for _ in 0..iters {
                        idle_for(&mut stream, STEP).await;
                    }
                    start.elapsed()
                }
            });
        });
        let (before, after, wall) = rt.block_on(async {
            let mut stream = stream.lock().await;
            let before = sim.calls();
            let start = Instant::now();
            idle_for(&mut stream, COUNTED * MINUTE).await;
            (before, sim.calls(), start.elapsed())
        });
        counts.push((shards, before, after, wall));
    }
    group.finish();
    for (shards, before, after, wall) in counts {
        let per = |a: u64, b: u64| (b - a) as f64 / shards as f64 / f64::from(COUNTED);
        println!(
            "idle {shards} shards: per shard per minute {:.2} calls (GetRecords {:.2}, \
             DescribeStream {:.3}, GetShardIterator {:.3}); CPU per minute {:.1} ms \
             ({:.1} us per call)",
            per(before.total, after.total),
            per(before.get_records, after.get_records),
            per(before.describe_stream, after.describe_stream),
            per(before.get_shard_iterator, after.get_shard_iterator),
            wall.as_secs_f64() * 1e3 / f64::from(COUNTED),
            wall.as_secs_f64() * 1e6 / (after.total - before.total) as f64,
        );
    }
}

criterion_group!(benches, idle);

/// `BENCH_PROFILE=<shards> BENCH_PROFILE_ITERS=<virtual minutes>`: settle, idle that long and
/// exit, for instruction counts (`valgrind --tool=callgrind`).
fn profile(shards: &str) {
    let shards: usize = shards.parse().expect("BENCH_PROFILE=<shards>");
    let minutes: u32 = std::env::var("BENCH_PROFILE_ITERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let rt = support::paused_runtime();
    rt.block_on(async {
        let sim = Simulator::builder().initial_shards(shards).build();
        let mut stream = ChangeStream::builder(sim.client(), sim.stream_arn())
            .build()
            .expect("a valid consumer");
        idle_for(&mut stream, MINUTE).await;
        idle_for(&mut stream, minutes * MINUTE).await;
        println!("calls: {:?}", sim.calls());
    });
}

fn main() {
    if let Ok(shards) = std::env::var("BENCH_PROFILE") {
        return profile(&shards);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
