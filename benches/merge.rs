//! Merge throughput: a backlog spread over 1 to 1000 shards, with and without splits, read by a
//! fresh `ChangeStream` through the real SDK client over the in-process simulator, on one core.
//!
//! About 100,000 records of about 200 bytes per iteration (`Throughput::Elements`: events/s),
//! default consumer settings (pages of up to 1000 records, read-ahead 1) from `TRIM_HORIZON`.
//! The runtime is current-thread on tokio's paused clock, so DescribeStream pacing and idle polls
//! cost no wall time: the figure is the CPU cost of everything (the SDK's request building and
//! JSON parsing, the simulator's answers, the crate's work), including the per-iteration start
//! (listing the shards, one GetShardIterator per shard).
//!
//! `split`: each root holds half its lineage's records and splits into two children holding a
//! quarter each, so the consumer follows 1 + 2 shards per lineage, parents first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group};

const EVENTS: usize = 100_000;

fn merge(c: &mut Criterion) {
    let rt = support::paused_runtime();
    let mut group = c.benchmark_group("merge");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for shards in [1usize, 16, 256, 1000] {
        for split in [false, true] {
            let per_shard = EVENTS / shards;
            let total = per_shard * shards;
            let sim = rt.block_on(async { support::backlog(shards, per_shard, split) });
            let name = if split { "split" } else { "no_split" };
            group.throughput(Throughput::Elements(total as u64));
            group.bench_function(BenchmarkId::new(name, shards), |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let sim = sim.clone();
                    async move {
                        let start = Instant::now();
                        for _ in 0..iters {
                            support::drain(&sim, total).await;
                        }
                        start.elapsed()
                    }
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, merge);

/// `BENCH_PROFILE=<shards>[:split] BENCH_PROFILE_ITERS=n`: drain that backlog `n` times and
/// exit, for instruction counts (`valgrind --tool=callgrind`).
fn profile(mode: &str) {
    let iters: usize = std::env::var("BENCH_PROFILE_ITERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let (shards, split) = match mode.split_once(':') {
        Some((n, "split")) => (n, true),
        _ => (mode, false),
    };
    let shards: usize = shards.parse().expect("BENCH_PROFILE=<shards>[:split]");
    let per_shard = EVENTS / shards;
    let rt = support::paused_runtime();
    rt.block_on(async {
        let sim = support::backlog(shards, per_shard, split);
        for _ in 0..iters {
            support::drain(&sim, per_shard * shards).await;
        }
        println!("calls: {:?}", sim.calls());
    });
    println!(
        "profiled {mode} x {iters}: {} events",
        iters * per_shard * shards
    );
}

fn main() {
    if let Ok(mode) = std::env::var("BENCH_PROFILE") {
        return profile(&mode);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
