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
//!
//! `merge_two_cores`: 16 and 256 shards again, on a two-worker runtime with the real clock,
//! where the default `Readers::Auto` reads each shard on its own task.
//!
//! All benches run on mimalloc (see `benches/support`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use dynamodb_stream::sim::Simulator;
use dynamodb_stream::{ChangeStream, StartPosition};

const EVENTS: usize = 100_000;

fn merge(c: &mut Criterion) {
    let rt = support::paused_runtime();
    drains(c, "merge", &rt, &[1, 16, 256, 1000], support::consumer);
}

/// The same drains on a multi-threaded runtime with two workers and the real clock: with the
/// default `Readers::Auto`, each shard is read on its own task, so the SDK's parsing runs on
/// both cores while the consumer takes events.
///
/// On the real clock the start-up listing is paced (one `DescribeStream` page of 100 shards
/// per 200 ms by default, 0.4 s for 256 shards, 1.6 s with their 512 children): the
/// consumers here space them by 1 ms, so that the figure is throughput, not that wait.
fn merge_two_cores(c: &mut Criterion) {
    let rt = support::two_worker_runtime();
    drains(c, "merge_two_cores", &rt, &[16, 256], |sim| {
        ChangeStream::builder(sim.client(), sim.stream_arn())
            .start(StartPosition::TrimHorizon)
            .describe_interval(Duration::from_millis(1))
            .build()
            .expect("a valid consumer")
    });
}

/// One group: `EVENTS` records over each shard count, with and without splits, drained on
/// `rt` by consumers that `make` builds.
fn drains(
    c: &mut Criterion,
    name: &str,
    rt: &tokio::runtime::Runtime,
    shard_counts: &[usize],
    make: fn(&Simulator) -> ChangeStream,
) {
    let mut group = support::drain_group(c, name, 10);
    for &shards in shard_counts {
        for split in [false, true] {
            let per_shard = EVENTS / shards;
            let total = per_shard * shards;
            let sim = rt.block_on(async { support::backlog(shards, per_shard, split) });
            let variant = if split { "split" } else { "no_split" };
            group.throughput(Throughput::Elements(total as u64));
            group.bench_function(BenchmarkId::new(variant, shards), |b| {
                support::bench_drain_of(b, rt, &sim, total, make);
            });
        }
    }
    group.finish();
}

criterion_group!(benches, merge, merge_two_cores);

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
