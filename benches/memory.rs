//! Memory under a backlog: 1000 shards with a deep backlog, a consumer that sleeps, and the
//! process's resident set sampled over time (`/proc/self/statm`). Not a criterion bench: it
//! prints a table.
//!
//! The simulator holds the whole backlog in this process, so what matters is the growth after
//! the simulator is built (the consumer's share): with read-ahead 1 it is bounded by one page
//! per shard, whatever the backlog, and stays flat while the consumer crawls.
//!
//! The simulator caps pages at 100 records (as the service's 1 MB cap does for 10 KB records),
//! so the read-ahead (1000 shards × 1 page × 100 records = 100,000 records) is a small part of
//! the backlog (1000 × 2000 = 2,000,000 records); the consumer's settings are the defaults.
//! Environment: `MEMORY_SHARDS`, `MEMORY_BACKLOG` (records per shard), `MEMORY_PAGE`,
//! `MEMORY_SECONDS`, `MEMORY_RATE` (events/s the consumer allows itself), `MEMORY_BUDGET_MIB`
//! (the stream's memory budget, default 256: the builder's default).
//!
//! The issue-12 measurement: `MEMORY_PAGE=1000` (the service's and the consumer's default page
//! size) and `MEMORY_RATE=100` (a consumer that all but sleeps), at 1000 and 10,000 shards:
//! the growth must stay within the budget + 64 MiB.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use dynamodb_stream::sim::Simulator;
use dynamodb_stream::{ChangeStream, StartPosition};
use futures::StreamExt;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    // `cargo bench -- <filter>`: run only when the filter names this bench (or none is given).
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if filter.as_deref().is_some_and(|f| !"memory".contains(f)) {
        return;
    }
    let shards = env("MEMORY_SHARDS", 1000);
    let backlog = env("MEMORY_BACKLOG", 2000);
    let page = env("MEMORY_PAGE", 100);
    let seconds = env("MEMORY_SECONDS", 20);
    let rate = env("MEMORY_RATE", 10_000);
    let budget = env("MEMORY_BUDGET_MIB", 256) << 20;

    let rt = support::real_runtime();
    rt.block_on(async {
        let start_rss = support::rss_bytes();
        let t = Instant::now();
        let sim = Simulator::builder()
            .initial_shards(shards)
            .max_page(page)
            .describe_rate_limit(false)
            .build();
        let ids: Vec<String> = sim.shards().into_iter().map(|s| s.shard_id).collect();
        for (lineage, id) in ids.iter().enumerate() {
            for j in 0..backlog {
                sim.append(id, support::record(lineage, j, support::RECORD_BYTES))
                    .expect("append");
            }
        }
        let base = support::rss_bytes();
        println!(
            "memory: {shards} shards x {backlog} records ({} records of ~{} B), pages of {page}; \
             simulator built in {:.1} s, holding {:.0} MiB",
            shards * backlog,
            support::RECORD_BYTES,
            t.elapsed().as_secs_f64(),
            mib(base.saturating_sub(start_rss)),
        );
        println!("memory: consumer allowed {rate} events/s for {seconds} s");
        println!(
            "{:>6} {:>10} {:>12} {:>14}",
            "t (s)", "events", "RSS (MiB)", "growth (MiB)"
        );

        let mut stream = ChangeStream::builder(sim.client(), sim.stream_arn())
            .start(StartPosition::TrimHorizon)
            .memory_budget(budget)
            .build()
            .expect("a valid consumer");
        let begin = Instant::now();
        let mut events = 0u64;
        let mut next_sample = Duration::ZERO;
        let mut samples = Vec::new();
        // Events per 10 ms tick.
        let batch = (rate / 100).max(1) as u64;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        while begin.elapsed() < Duration::from_secs(seconds as u64) {
            tick.tick().await;
            for _ in 0..batch {
                match stream.next().await {
                    Some(Ok(event)) => {
                        std::hint::black_box(event);
                        events += 1;
                    }
                    other => panic!("the stream ended: {other:?}"),
                }
            }
            if begin.elapsed() >= next_sample {
                let rss = support::rss_bytes();
                println!(
                    "{:>6.1} {:>10} {:>12.1} {:>14.1}",
                    begin.elapsed().as_secs_f64(),
                    events,
                    mib(rss),
                    mib(rss.saturating_sub(base))
                );
                samples.push(rss.saturating_sub(base));
                next_sample += Duration::from_secs(1);
            }
        }
        let later = &samples[samples.len().min(3)..];
        let (lo, hi) = (
            later.iter().copied().min().unwrap_or(0),
            later.iter().copied().max().unwrap_or(0),
        );
        println!(
            "memory: consumer growth after 3 s between {:.1} and {:.1} MiB while {events} of {} \
             records were consumed; backlog left {}",
            mib(lo),
            mib(hi),
            shards * backlog,
            (shards * backlog) as u64 - events,
        );
        let memory = stream.status().memory;
        println!(
            "memory: budget {:.0} MiB, reserved at the end {:.1} MiB; GetRecords calls {}",
            mib(memory.budget as u64),
            mib(memory.reserved as u64),
            sim.calls().get_records,
        );
    });
}
