//! Latency: records appended live, the time from a record's append to its event leaving the
//! stream, under the default configuration (start at `LATEST`, idle shards polled every 250 ms
//! backing off to 2 s, a shard with records read back to back).
//!
//! - `latency/steady_4_shards` (criterion, real clock, multi-threaded runtime): 4 shards
//!   written at random (exponential gaps) at 10 records/s each by a background writer;
//!   criterion's time per iteration is the mean latency of one record. The p50/p90/p99 of
//!   every record criterion measured are printed after the run.
//! - Then, on tokio's paused clock (the polling schedule exactly, without CPU noise, so many
//!   records in little time), p50/p90/p99 for a steady load (10 records/s per shard) and a
//!   sparse one (one record per shard every 6 s on average, so shards idle and back off).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use dynamodb_stream::ChangeStream;
use dynamodb_stream::sim::{AttributeValue, Item, RecordKind, SimRecord, Simulator};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

const SHARDS: usize = 4;

/// A live consumer with default settings, and a writer appending stamped records at random
/// shards with exponential gaps, both spawned: they run between criterion's calls too.
struct Rig {
    latencies: tokio::sync::Mutex<mpsc::UnboundedReceiver<Duration>>,
    all: Mutex<Vec<Duration>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Rig {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn item(pk: &str) -> Item {
    Item::from([("pk".to_owned(), AttributeValue::S(pk.to_owned()))])
}

fn record(pk: &str) -> SimRecord {
    let mut image = item(pk);
    image.insert("payload".to_owned(), AttributeValue::S("x".repeat(180)));
    SimRecord::new(RecordKind::Insert, item(pk)).with_new_image(image)
}

impl Rig {
    /// Starts the consumer, waits until it reads every shard (a `LATEST` start only sees
    /// records written after its iterators were taken), then starts the writer: on average one
    /// record every `mean_gap`, over all shards.
    async fn start(mean_gap: Duration) -> Rig {
        let sim = Simulator::builder().initial_shards(SHARDS).build();
        let shards: Vec<String> = sim.shards().into_iter().map(|s| s.shard_id).collect();
        let appended: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let (tx, rx) = mpsc::unbounded_channel();
        let (warm_tx, mut warm_rx) = mpsc::unbounded_channel::<String>();
        let mut stream = ChangeStream::builder(sim.client(), sim.stream_arn())
            .build()
            .expect("a valid consumer");
        let stamps = appended.clone();
        let consumer = tokio::spawn(async move {
            while let Some(event) = stream.next().await {
                let now = Instant::now();
                let event = event.expect("an event");
                let Some(AttributeValue::S(pk)) = event.raw_keys().get("pk") else {
                    continue;
                };
                if pk.starts_with("warm") {
                    let _ = warm_tx.send(event.shard_id().to_owned());
                    continue;
                }
                let at = stamps.lock().unwrap().remove(pk.as_str());
                if let Some(at) = at
                    && tx.send(now - at).is_err()
                {
                    return;
                }
            }
        });
        let mut warm: std::collections::HashSet<String> = Default::default();
        let mut i = 0;
        while warm.len() < SHARDS {
            for shard in &shards {
                sim.append(shard, record(&format!("warm{i}")))
                    .expect("append");
                i += 1;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            while let Ok(shard) = warm_rx.try_recv() {
                warm.insert(shard);
            }
        }
        let writer = tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(7);
            for n in 0u64.. {
                let gap = mean_gap.mul_f64(-(1.0 - rng.f64()).ln());
                tokio::time::sleep(gap).await;
                let pk = format!("m{n}");
                let shard = &shards[rng.usize(..shards.len())];
                appended.lock().unwrap().insert(pk.clone(), Instant::now());
                sim.append(shard, record(&pk)).expect("append");
            }
        });
        // Let the warm-up records drain and the load settle.
        tokio::time::sleep(Duration::from_secs(2)).await;
        Rig {
            latencies: tokio::sync::Mutex::new(rx),
            all: Mutex::default(),
            tasks: vec![consumer, writer],
        }
    }

    /// The latencies of the next `n` records delivered.
    async fn next(&self, n: u64) -> Vec<Duration> {
        let mut rx = self.latencies.lock().await;
        // Records delivered while nobody measured are not counted.
        while rx.try_recv().is_ok() {}
        let mut out = Vec::with_capacity(n as usize);
        for _ in 0..n {
            out.push(rx.recv().await.expect("the consumer runs"));
        }
        self.all.lock().unwrap().extend(&out);
        out
    }
}

fn report(what: &str, mut latencies: Vec<Duration>) {
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "latency {what}: {} records, p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        ms(support::percentile(&latencies, 50.0)),
        ms(support::percentile(&latencies, 90.0)),
        ms(support::percentile(&latencies, 99.0)),
        ms(latencies.last().copied().unwrap_or_default()),
    );
}

fn latency(c: &mut Criterion) {
    // Per shard 10 records/s.
    let steady = Duration::from_millis(100) / SHARDS as u32;
    // Per shard one record every 6 s on average.
    let sparse = Duration::from_millis(6000) / SHARDS as u32;
    // Multi-threaded: the writer and the consumer keep running between criterion's calls.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let rig = Arc::new(rt.block_on(Rig::start(steady)));
    let mut group = c.benchmark_group("latency");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        // Criterion adds up latencies here (about 140 ms each), collected at 40 records/s.
        .measurement_time(Duration::from_secs(20));
    group.bench_function("steady_4_shards", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let rig = rig.clone();
            async move { rig.next(iters).await.into_iter().sum() }
        });
    });
    group.finish();
    report(
        "steady 4 shards x 10/s, real clock",
        rig.all.lock().unwrap().clone(),
    );
    drop(rig);
    drop(rt);

    let paused = support::paused_runtime();
    paused.block_on(async {
        let rig = Rig::start(steady).await;
        report("steady 4 shards x 10/s, paused clock", rig.next(4000).await);
        drop(rig);
        let rig = Rig::start(sparse).await;
        report(
            "sparse 4 shards x 1 per 6 s, paused clock",
            rig.next(1000).await,
        );
    });
}

criterion_group!(benches, latency);
criterion_main!(benches);
