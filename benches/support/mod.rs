//! What the benches share: scripted streams, runtimes and the timing of whole drains.
#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{Bencher, BenchmarkGroup, Criterion, SamplingMode};
use dynamodb_stream::sim::{AttributeValue, Item, RecordKind, SimRecord, Simulator};
use dynamodb_stream::{ChangeStream, Decoding, StartPosition};
use futures::StreamExt;

/// Every bench runs on mimalloc, the allocator `tail` uses: the SDK parses a page into many
/// small allocations that are freed long after (or on another thread), a pattern glibc's
/// malloc handles slowly. `RUSTFLAGS="--cfg bench_system_alloc" cargo bench` measures with the
/// system allocator instead.
#[cfg(not(bench_system_alloc))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The allocator this bench binary runs on, for the reports.
pub const ALLOCATOR_NAME: &str = if cfg!(bench_system_alloc) {
    "system"
} else {
    "mimalloc"
};

/// The item size the benches write, in bytes (attribute names plus values).
pub const RECORD_BYTES: usize = 200;

/// A current-thread runtime on tokio's paused clock: waits (DescribeStream pacing, idle polls)
/// cost no wall time, so what is measured is the CPU work on one core.
pub fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a tokio runtime")
}

/// A multi-threaded runtime with two workers on the real clock: shard readers run on their
/// own tasks (`Readers::Auto`), so the SDK's parsing spreads over both cores.
pub fn two_worker_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A current-thread runtime on the real clock.
pub fn real_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Record `j` of lineage `lineage`: key `l<lineage>-k<j mod 100>`, `v = j`, a payload that
/// brings the item to about `bytes` bytes; `INSERT` the first time a key appears, else `MODIFY`.
pub fn record(lineage: usize, j: usize, bytes: usize) -> SimRecord {
    let pk = format!("l{lineage:04}-k{:04}", j % 100);
    let v = j.to_string();
    let fixed = "pk".len() + pk.len() + "v".len() + v.len() + "payload".len();
    let key = Item::from([("pk".to_owned(), AttributeValue::S(pk))]);
    let mut image = key.clone();
    image.insert("v".to_owned(), AttributeValue::N(v));
    image.insert(
        "payload".to_owned(),
        AttributeValue::S("x".repeat(bytes.saturating_sub(fixed))),
    );
    let kind = if j < 100 {
        RecordKind::Insert
    } else {
        RecordKind::Modify
    };
    SimRecord::new(kind, key).with_new_image(image)
}

/// A simulator with `shards` open root shards holding `per_shard` records each. With `split`,
/// each root gets half its records, then splits into two open children that get a quarter
/// each (so `shards` lineages of `per_shard` records, `3 × shards` shards).
///
/// Call it inside a runtime: the simulator reads tokio's clock.
pub fn backlog(shards: usize, per_shard: usize, split: bool) -> Simulator {
    let sim = Simulator::builder()
        .initial_shards(shards)
        // Pacing is the consumer's job (and costs no wall time on the paused clock).
        .describe_rate_limit(false)
        .build();
    let roots: Vec<String> = sim.shards().into_iter().map(|s| s.shard_id).collect();
    for (lineage, root) in roots.iter().enumerate() {
        if !split {
            for j in 0..per_shard {
                sim.append(root, record(lineage, j, RECORD_BYTES))
                    .expect("append");
            }
            continue;
        }
        let half = per_shard / 2;
        for j in 0..half {
            sim.append(root, record(lineage, j, RECORD_BYTES))
                .expect("append");
        }
        let children = sim.split(root, 2);
        for j in half..per_shard {
            let child = &children[(j % 100) % 2];
            sim.append(child, record(lineage, j, RECORD_BYTES))
                .expect("append");
        }
    }
    sim
}

/// A fresh consumer of the whole backlog, default settings (the raw-page fast path) but
/// `TRIM_HORIZON`.
pub fn consumer(sim: &Simulator) -> ChangeStream {
    consumer_decoding(sim, Decoding::default())
}

/// [`consumer`] with the SDK decoding every page (the path of the earlier rounds).
pub fn sdk_consumer(sim: &Simulator) -> ChangeStream {
    consumer_decoding(sim, Decoding::Sdk)
}

/// [`consumer`] with the given decoding.
pub fn consumer_decoding(sim: &Simulator, decoding: Decoding) -> ChangeStream {
    ChangeStream::builder(sim.client(), sim.stream_arn())
        .start(StartPosition::TrimHorizon)
        .decoding(decoding)
        .build()
        .expect("a valid consumer")
}

/// Reads `n` events with a fresh consumer; returns how many, after checking none failed.
pub async fn drain(sim: &Simulator, n: usize) -> usize {
    drain_stream(consumer(sim), n).await
}

/// Reads `n` events from `stream`; returns how many, after checking none failed.
pub async fn drain_stream(stream: ChangeStream, n: usize) -> usize {
    let mut stream = stream.take(n);
    let mut seen = 0;
    while let Some(event) = stream.next().await {
        let event = event.expect("an event");
        std::hint::black_box(&event);
        seen += 1;
    }
    assert_eq!(seen, n, "the stream ended early");
    seen
}

/// A benchmark group for iterations that drain a whole backlog (tens of milliseconds and up):
/// flat sampling, `samples` samples, half a second of warm-up and 3 s of measurement. The
/// caller sets the throughput.
pub fn drain_group<'a>(
    c: &'a mut Criterion,
    name: &str,
    samples: usize,
) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(samples)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    group
}

/// Measures [`drain`] on `rt`: criterion's `iters` fresh consumers of `sim`, each reading `n`
/// events, timed back to back (the simulator's setup is not in the time).
pub fn bench_drain(b: &mut Bencher<'_>, rt: &tokio::runtime::Runtime, sim: &Simulator, n: usize) {
    bench_drain_of(b, rt, sim, n, consumer);
}

/// [`bench_drain`] with consumers made by `make`.
pub fn bench_drain_of(
    b: &mut Bencher<'_>,
    rt: &tokio::runtime::Runtime,
    sim: &Simulator,
    n: usize,
    make: fn(&Simulator) -> ChangeStream,
) {
    b.to_async(rt).iter_custom(|iters| {
        let sim = sim.clone();
        async move {
            let start = Instant::now();
            for _ in 0..iters {
                drain_stream(make(&sim), n).await;
            }
            start.elapsed()
        }
    });
}

/// Resident set size of this process, in bytes (Linux: `/proc/self/statm`).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// CPU time (user + system) used by this process so far (Linux: `/proc/self/stat`).
pub fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let total = ticks(11) + ticks(12);
    Duration::from_millis(total * 10)
}

/// Percentile `p` (0..=100) of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}
