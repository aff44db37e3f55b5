//! The checkpoint token on every event, with 1000 open shards.
//!
//! - `stream_1000_shards`: 1000 open shards × 100 records drained by a fresh `ChangeStream`
//!   (paused clock, one core), the consumer dropping each event: every event's token is built
//!   (a shared snapshot per page, the shard's head per event) whether or not it is used;
//! - `stream_1000_shards_keep_all`: the same, keeping every event's token alive until the end
//!   (what holding unacknowledged tokens costs);
//! - on one token of a 1000-shard stream: `clone` (holding it), `position` (one shard's
//!   position), `to_string` (its text form, what a save writes) and `parse` (resume).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use dynamodb_stream::Checkpoint;
use futures::StreamExt;

const SHARDS: usize = 1000;
const PER_SHARD: usize = 100;

fn checkpoint(c: &mut Criterion) {
    let rt = support::paused_runtime();
    let sim = rt.block_on(async { support::backlog(SHARDS, PER_SHARD, false) });
    let total = SHARDS * PER_SHARD;

    let mut group = support::drain_group(c, "checkpoint", 10);
    group.throughput(Throughput::Elements(total as u64));
    group.bench_function("stream_1000_shards", |b| {
        support::bench_drain(b, &rt, &sim, total);
    });
    group.bench_function("stream_1000_shards_keep_all", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let sim = sim.clone();
            async move {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let tokens: Vec<Checkpoint> = support::consumer(&sim)
                        .take(total)
                        .map(|e| e.expect("an event").into_checkpoint())
                        .collect()
                        .await;
                    elapsed += start.elapsed();
                    assert_eq!(tokens.len(), total);
                }
                elapsed
            }
        });
    });

    // A token from late in the drain: every shard has a position.
    let (token, shard) = rt.block_on(async {
        let mut stream = support::consumer(&sim).take(total);
        let mut last = None;
        while let Some(event) = stream.next().await {
            let event = event.expect("an event");
            last = Some((event.checkpoint().clone(), event.shard_id().to_owned()));
        }
        last.expect("events")
    });
    assert_eq!(token.positions().len(), SHARDS);
    let text = token.to_string();
    println!(
        "checkpoint: a {SHARDS}-shard token's text form is {} bytes",
        text.len()
    );

    group.throughput(Throughput::Elements(1));
    group
        .sampling_mode(SamplingMode::Auto)
        .sample_size(30)
        .measurement_time(Duration::from_secs(1));
    group.bench_function("token_clone", |b| {
        b.iter_batched(|| (), |()| token.clone(), BatchSize::SmallInput);
    });
    group.bench_function("token_position", |b| {
        b.iter(|| std::hint::black_box(token.position(std::hint::black_box(&shard))).is_some());
    });
    group.bench_function("token_to_string", |b| b.iter(|| token.to_string()));
    group.bench_function("token_parse", |b| {
        b.iter(|| text.parse::<Checkpoint>().expect("parses"));
    });
    group.finish();
}

criterion_group!(benches, checkpoint);
criterion_main!(benches);
