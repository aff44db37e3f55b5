//! What `process_by_key` costs per event over a plain `next()` loop.
//!
//! About 100,000 events of one stream (64 shards, 6,400 items) are read once from the simulator and
//! kept; each iteration replays a copy of them from memory (made outside the measurement), so the figure is the combinator's
//! own work (the key of each event, the per-item queues, the in-order checkpoint window and the
//! handler futures), not the stream's. The handler does nothing and is ready at once: the
//! worst case for the combinator's share. `next` drains the same events with a plain loop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::future::ready;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group};
use dynamodb_stream::sim::Simulator;
use dynamodb_stream::{ChangeEvent, ChangeStreamExt};
use futures::StreamExt;

const SHARDS: usize = 64;
const EVENTS: usize = 100_000;

fn events(rt: &tokio::runtime::Runtime) -> Vec<ChangeEvent> {
    rt.block_on(async {
        let sim: Simulator = support::backlog(SHARDS, EVENTS / SHARDS, false);
        let total = (EVENTS / SHARDS) * SHARDS;
        support::consumer(&sim)
            .take(total)
            .map(|r| r.expect("an event"))
            .collect()
            .await
    })
}

fn process(c: &mut Criterion) {
    let rt = support::paused_runtime();
    let events = events(&rt);
    let mut group = c.benchmark_group("process");
    group.sample_size(20);
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("next", |b| {
        b.iter_batched(
            || events.clone(),
            |events| {
                rt.block_on(async {
                    let total = events.len();
                    let mut input = futures::stream::iter(events.into_iter().map(Ok::<_, ()>));
                    let mut n = 0usize;
                    while let Some(ev) = input.next().await {
                        n += usize::from(ev.is_ok());
                    }
                    assert_eq!(n, total);
                })
            },
            BatchSize::LargeInput,
        );
    });
    for concurrency in [1, 16, 256] {
        group.bench_function(BenchmarkId::new("process_by_key", concurrency), |b| {
            b.iter_batched(
                || events.clone(),
                |events| {
                    rt.block_on(async {
                        let total = events.len();
                        let input = futures::stream::iter(
                            events.into_iter().map(Ok::<_, dynamodb_stream::Error>),
                        );
                        let mut done = input.process_by_key(concurrency, |_event| {
                            ready(Ok::<(), std::io::Error>(()))
                        });
                        let mut n = 0usize;
                        while let Some(checkpoint) = done.next().await {
                            n += usize::from(checkpoint.is_ok());
                        }
                        assert_eq!(n, total);
                    })
                },
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, process);

fn main() {
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
