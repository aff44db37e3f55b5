//! The metrics a stream exports (feature `metrics`), read back through a debugging recorder
//! installed on the test's own thread (tests run in parallel: no global recorder), with the
//! readers polled inline on that thread: the counters equal what the simulator was made to
//! do, and the iterator age follows the records' creation times.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dynamodb_stream::sim::{Fault, Operation, Simulator};
use dynamodb_stream::{ChangeStream, Readers, TrimPolicy};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use support::sim::*;

/// A series: its name and its labels, sorted.
type Series = (String, Vec<(String, String)>);

/// What the recorder holds, read snapshot by snapshot (a snapshot resets what it reads):
/// counters summed over every snapshot, gauges as the last one left them.
#[derive(Default)]
struct Seen {
    counters: HashMap<Series, u64>,
    gauges: HashMap<Series, f64>,
}

impl Seen {
    fn read(&mut self, snapshotter: &Snapshotter) {
        self.gauges.clear();
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let key = key.key();
            let mut labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            let series = (key.name().to_owned(), labels);
            match value {
                DebugValue::Counter(n) => *self.counters.entry(series).or_default() += n,
                DebugValue::Gauge(g) => {
                    self.gauges.insert(series, g.0);
                }
                DebugValue::Histogram(_) => panic!("no histograms are exported"),
            }
        }
    }

    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.counters
            .get(&series(name, labels))
            .copied()
            .unwrap_or(0)
    }

    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let series = series(name, labels);
        *self
            .gauges
            .get(&series)
            .unwrap_or_else(|| panic!("no gauge {series:?} in {:?}", self.gauges.keys()))
    }
}

fn series(name: &str, labels: &[(&str, &str)]) -> Series {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    labels.sort();
    (name.to_owned(), labels)
}

/// A simulator whose only shard holds five records written ten minutes ago, a checkpoint
/// after the second of them, and the parent's id. The first three are then trimmed (the
/// third unread: a gap), the shard splits, and four records written a minute ago go to its
/// children.
async fn scripted() -> (Simulator, dynamodb_stream::Checkpoint, String) {
    let sim = Simulator::builder().initial_shards(1).seed(7).build();
    let parent = sim.shards()[0].shard_id.clone();
    sim.set_max_page(1);
    sim.backdate(Duration::from_secs(600));
    let written: Vec<_> = (0..5).map(|v| sim.put_item(item("k", v))).collect();
    // Read without a recorder: nothing of this run is counted.
    let mut first = builder(&sim).build().unwrap();
    let checkpoint = take(&mut first, 2).await[1].checkpoint().clone();
    drop(first);
    sim.trim_before(&parent, &written[3].sequence_number);
    sim.split(&parent, 2);
    sim.backdate(Duration::from_secs(60));
    for v in 5..9 {
        sim.put_item(item(&format!("c{v}"), v));
    }
    (sim, checkpoint, parent)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test(start_paused = true)]
async fn counters_equal_what_happened_and_the_age_follows_creation_times() {
    let (sim, checkpoint, parent) = scripted().await;
    // The SDK tries each call 3 times: six throttles are two throttled calls for the crate.
    sim.inject(Operation::GetRecords, Fault::LimitExceeded, 6);
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let calls_before = sim.calls().get_records;
    let arn = sim.stream_arn();
    let stream_label = [("stream", arn.as_str())];
    let mut stream: ChangeStream = builder(&sim)
        .resume_from(checkpoint)
        .on_trimmed(TrimPolicy::SkipToTrimHorizon)
        .readers(Readers::Inline)
        .until_caught_up(true)
        .build()
        .unwrap();
    let mut seen = Seen::default();

    // The parent's records are ten minutes old: so is its lag once one was delivered (the
    // gauges are set at most once a second, as the next page is asked for).
    let mut events = take(&mut stream, 1).await;
    assert_eq!(events[0].shard_id(), parent);
    tokio::time::sleep(Duration::from_secs(2)).await;
    events.extend(take(&mut stream, 1).await);
    seen.read(&snapshotter);
    let parent_age = [("stream", arn.as_str()), ("shard", parent.as_str())];
    let age = seen.gauge("dynamodb_stream_shard_iterator_age_seconds", &parent_age);
    assert!((600.0..605.0).contains(&age), "parent's lag {age}");
    let age = seen.gauge("dynamodb_stream_iterator_age_seconds", &stream_label);
    assert!((600.0..605.0).contains(&age), "stream's lag {age}");
    let held = seen.gauge("dynamodb_stream_shards_held", &stream_label);
    assert_eq!(held, 1.0, "the parent is read, its children wait");

    // The children's records are a minute old.
    events.extend(take(&mut stream, 1).await);
    let child = events[2].shard_id().to_owned();
    assert_ne!(child, parent);
    tokio::time::sleep(Duration::from_secs(2)).await;
    events.extend(take(&mut stream, 1).await);
    seen.read(&snapshotter);
    let child_age = [("stream", arn.as_str()), ("shard", child.as_str())];
    let age = seen.gauge("dynamodb_stream_shard_iterator_age_seconds", &child_age);
    assert!((60.0..65.0).contains(&age), "child's lag {age}");
    let age = seen.gauge("dynamodb_stream_iterator_age_seconds", &stream_label);
    assert!((60.0..65.0).contains(&age), "stream's lag {age}");

    events.extend(drain_ok(stream).await);
    seen.read(&snapshotter);
    // Every record but the three trimmed ones, and the parent's before its children's.
    assert_eq!(events.len(), 6);
    assert_parents_first(&sim, &events);
    let polls = sim.calls().get_records - calls_before - 6;
    assert_eq!(
        seen.counter("dynamodb_stream_polls_total", &stream_label),
        polls
    );
    assert_eq!(
        seen.counter("dynamodb_stream_records_delivered_total", &stream_label),
        6
    );
    assert_eq!(seen.counter("dynamodb_stream_gaps_total", &stream_label), 1);
    let get_records = [("stream", arn.as_str()), ("operation", "GetRecords")];
    assert_eq!(
        seen.counter("dynamodb_stream_throttles_total", &get_records),
        2
    );
    let retried = [
        ("stream", arn.as_str()),
        ("operation", "GetRecords"),
        ("fault", "throttled"),
    ];
    assert_eq!(seen.counter("dynamodb_stream_retries_total", &retried), 2);
    let others: u64 = seen
        .counters
        .iter()
        .filter(|((name, labels), _)| {
            name == "dynamodb_stream_retries_total" && labels != &series("", &retried).1
        })
        .map(|(_, n)| n)
        .sum();
    assert_eq!(others, 0, "no other retries: {:?}", seen.counters);

    // Caught up: no lag, nothing read ahead, nothing held; one shard finished, two caught up.
    for shard in std::iter::once(parent.as_str()).chain([child.as_str()]) {
        let labels = [("stream", arn.as_str()), ("shard", shard)];
        let age = seen
            .gauges
            .get(&series(
                "dynamodb_stream_shard_iterator_age_seconds",
                &labels,
            ))
            .copied()
            .unwrap_or(0.0);
        assert_eq!(age, 0.0, "{shard}");
    }
    assert_eq!(
        seen.gauge("dynamodb_stream_iterator_age_seconds", &stream_label),
        0.0
    );
    assert_eq!(
        seen.gauge("dynamodb_stream_records_read_ahead", &stream_label),
        0.0
    );
    assert_eq!(
        seen.gauge("dynamodb_stream_shards_held", &stream_label),
        0.0
    );
    let shards = |state| {
        seen.gauge(
            "dynamodb_stream_shards",
            &[("stream", arn.as_str()), ("state", state)],
        )
    };
    assert_eq!(
        [
            shards("waiting"),
            shards("reading"),
            shards("caught_up"),
            shards("finished")
        ],
        [0.0, 0.0, 2.0, 1.0]
    );
    let polled = seen.gauge("dynamodb_stream_last_poll_timestamp_seconds", &stream_label);
    assert!(
        (unix_now() - 60.0..=unix_now()).contains(&polled),
        "{polled}"
    );
}

/// Without a recorder the hooks do nothing, and the stream reads as before.
#[tokio::test(start_paused = true)]
async fn without_a_recorder_nothing_changes() {
    let (sim, checkpoint, _) = scripted().await;
    let stream = builder(&sim)
        .resume_from(checkpoint)
        .on_trimmed(TrimPolicy::SkipToTrimHorizon)
        .until_caught_up(true)
        .build()
        .unwrap();
    assert_eq!(drain_ok(stream).await.len(), 6);
}
