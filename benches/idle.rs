//! Idle cost: what a consumer with default settings spends on shards that receive nothing.
//!
//! On tokio's paused clock (virtual minutes in milliseconds of wall time), a `ChangeStream`
//! over N open, empty shards runs one virtual minute to settle (listing, first iterators, idle
//! backoff to its 2 s cap), then:
//! - `idle/virtual_minute/N` (criterion): the wall time, on one core, to run one more virtual
//!   minute: the CPU an idle consumer of N shards burns per minute (`Throughput::Elements(N)`:
//!   shard-minutes per second of CPU);
//! - printed after: API calls per idle shard per minute, counted by the simulator over ten
//!   virtual minutes, per operation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use dynamodb_stream::ChangeStream;
use dynamodb_stream::sim::Simulator;
use futures::StreamExt;
use tokio::sync::Mutex;

const MINUTE: Duration = Duration::from_secs(60);

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
        group.bench_function(BenchmarkId::new("virtual_minute", shards), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let stream = stream.clone();
                async move {
                    let mut stream = stream.lock().await;
                    let start = Instant::now();
                    for _ in 0..iters {
                        idle_for(&mut stream, MINUTE).await;
                    }
                    start.elapsed()
                }
            });
        });
        let (before, after, wall) = rt.block_on(async {
            let mut stream = stream.lock().await;
            let before = sim.calls();
            let start = Instant::now();
            idle_for(&mut stream, 10 * MINUTE).await;
            (before, sim.calls(), start.elapsed())
        });
        counts.push((shards, before, after, wall));
    }
    group.finish();
    for (shards, before, after, wall) in counts {
        let per = |a: u64, b: u64| (b - a) as f64 / shards as f64 / 10.0;
        println!(
            "idle {shards} shards: per shard per minute {:.2} calls (GetRecords {:.2}, \
             DescribeStream {:.3}, GetShardIterator {:.3}); CPU for 10 minutes {:.1} ms",
            per(before.total, after.total),
            per(before.get_records, after.get_records),
            per(before.describe_stream, after.describe_stream),
            per(before.get_shard_iterator, after.get_shard_iterator),
            wall.as_secs_f64() * 1e3,
        );
    }
}

criterion_group!(benches, idle);
criterion_main!(benches);
