//! Latency: records appended live, the time from a record's append to its event leaving the
//! stream, under the default configuration (start at `LATEST`, idle shards polled every 250 ms
//! backing off to 2 s, a shard with records read back to back).
//!
//! - `latency/steady_4_shards` (criterion, real clock): 4 shards written at random
//!   (exponential gaps) at 10 records/s each; criterion's time per iteration is the mean
//!   latency of one record. Its p50/p90/p99 are printed after the run.
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

/// A live consumer with default settings, and a writer that stamps every append.
struct Rig {
    sim: Simulator,
    shards: Vec<String>,
    appended: Arc<Mutex<HashMap<String, Instant>>>,
    latencies: tokio::sync::Mutex<mpsc::UnboundedReceiver<Duration>>,
    all: Mutex<Vec<Duration>>,
    next: Mutex<u64>,
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
    /// Starts the consumer (spawned on the current runtime) and waits until it reads every
    /// shard: a `LATEST` start only sees records written after its iterators were taken.
    async fn start() -> Arc<Rig> {
        let sim = Simulator::builder().initial_shards(SHARDS).build();
        let shards: Vec<String> = sim.shards().into_iter().map(|s| s.shard_id).collect();
        let appended: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let (tx, rx) = mpsc::unbounded_channel();
        let (warm_tx, mut warm_rx) = mpsc::unbounded_channel::<String>();
        let mut stream = ChangeStream::builder(sim.client(), sim.stream_arn())
            .build()
            .expect("a valid consumer");
        let stamps = appended.clone();
        tokio::spawn(async move {
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
                if let Some(at) = at {
                    if tx.send(now - at).is_err() {
                        return;
                    }
                }
            }
        });
        let mut warm: std::collections::HashSet<String> = Default::default();
        let mut i = 0;
        while warm.len() < SHARDS {
            for shard in &shards {
                sim.append(shard, record(&format!("warm{i}"))).expect("append");
                i += 1;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            while let Ok(shard) = warm_rx.try_recv() {
                warm.insert(shard);
            }
        }
        // Let the warm-up records drain.
        tokio::time::sleep(Duration::from_millis(500)).await;
        Arc::new(Rig {
            sim,
            shards,
            appended,
            latencies: tokio::sync::Mutex::new(rx),
            all: Mutex::default(),
            next: Mutex::new(0),
        })
    }

    /// Appends `n` records at random shards with exponential gaps of `mean_gap`; returns each
    /// record's latency once all were delivered.
    async fn run(&self, n: u64, mean_gap: Duration) -> Vec<Duration> {
        let mut rx = self.latencies.lock().await;
        for _ in 0..n {
            let gap = mean_gap.mul_f64(-(1.0 - fastrand::f64()).ln());
            tokio::time::sleep(gap).await;
            let pk = {
                let mut next = self.next.lock().unwrap();
                *next += 1;
                format!("m{next}")
            };
            let shard = &self.shards[fastrand::usize(..self.shards.len())];
            self.appended.lock().unwrap().insert(pk.clone(), Instant::now());
            self.sim.append(shard, record(&pk)).expect("append");
        }
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
    fastrand::seed(7);
    // Per shard 10 records/s.
    let steady = Duration::from_millis(100) / SHARDS as u32;
    let rt = support::real_runtime();
    let rig = rt.block_on(Rig::start());
    let mut group = c.benchmark_group("latency");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        // Criterion counts latencies here: about 150 records, in about 5 s of wall time.
        .measurement_time(Duration::from_secs(20));
    group.bench_function("steady_4_shards", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let rig = rig.clone();
            async move { rig.run(iters, steady).await.into_iter().sum() }
        });
    });
    group.finish();
    report("steady 4 shards, real clock", rig.all.lock().unwrap().clone());
    drop(rt);

    let paused = support::paused_runtime();
    paused.block_on(async {
        let rig = Rig::start().await;
        report(
            "steady 4 shards x 10/s, paused clock",
            rig.run(4000, steady).await,
        );
        let rig = Rig::start().await;
        report(
            "sparse 4 shards x 1 per 6 s, paused clock",
            rig.run(1000, Duration::from_millis(1500)).await,
        );
    });
}

criterion_group!(benches, latency);
criterion_main!(benches);
