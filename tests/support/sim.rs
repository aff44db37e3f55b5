//! Building consumers over the simulator, and checking what they deliver.

use std::collections::HashMap;
use std::time::Duration;

use dynamodb_stream::sim::{AttributeValue, Item, Simulator};
use dynamodb_stream::{
    ChangeEvent, ChangeStream, ChangeStreamBuilder, CheckpointStore, Result, StartPosition,
};
use futures::StreamExt;

/// An item `{pk: S, v: N}`.
pub fn item(pk: &str, v: u64) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk.to_owned())),
        ("v".to_owned(), AttributeValue::N(v.to_string())),
    ])
}

/// A key `{pk: S}`.
pub fn key(pk: &str) -> Item {
    HashMap::from([("pk".to_owned(), AttributeValue::S(pk.to_owned()))])
}

/// The ids of the simulator's open shards, in the order it lists them.
pub fn open_shards(sim: &Simulator) -> Vec<String> {
    sim.shards()
        .into_iter()
        .filter(|s| s.open)
        .map(|s| s.shard_id)
        .collect()
}

/// A builder over the simulator with test-friendly polling.
pub fn builder(sim: &Simulator) -> ChangeStreamBuilder {
    ChangeStream::builder(sim.client(), sim.stream_arn())
        .start(StartPosition::TrimHorizon)
        .poll_interval(Duration::from_millis(50))
        .max_poll_interval(Duration::from_millis(200))
}

/// The consumer `builder` builds once it resumes from what `store` holds (or keeps its start
/// position if the store holds nothing for the stream).
pub async fn resumed(builder: ChangeStreamBuilder, store: &impl CheckpointStore) -> ChangeStream {
    builder
        .resume_from_store(store)
        .await
        .expect("the store loads")
        .build()
        .expect("a valid consumer")
}

/// Everything until the stream ends (catch-up mode), failing the test after a (virtual) hour.
pub async fn drain(stream: ChangeStream) -> Vec<Result<ChangeEvent>> {
    within_an_hour(stream.collect::<Vec<_>>(), "the stream did not end").await
}

/// `future`'s output, failing the test after a (virtual) hour: also when the future only
/// finished because the test's own timer woke it (a stall that nothing else would end).
async fn within_an_hour<T>(future: impl std::future::Future<Output = T>, what: &str) -> T {
    const HOUR: Duration = Duration::from_secs(3600);
    let started = tokio::time::Instant::now();
    let out = tokio::time::timeout(HOUR, future).await.expect(what);
    assert!(
        started.elapsed() < HOUR,
        "{what}: stalled until the test's timer woke it"
    );
    out
}

/// Like `drain`, requiring every item to be an event.
pub async fn drain_ok(stream: ChangeStream) -> Vec<ChangeEvent> {
    drain(stream)
        .await
        .into_iter()
        .map(|r| r.expect("unexpected error"))
        .collect()
}

/// The first `n` events, failing the test if they do not come within a (virtual) hour.
pub async fn take(stream: &mut ChangeStream, n: usize) -> Vec<ChangeEvent> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let next = within_an_hour(stream.next(), "no event within an hour").await;
        match next {
            Some(Ok(ev)) => out.push(ev),
            Some(Err(e)) => panic!("unexpected error after {} events: {e:?}", out.len()),
            None => panic!("stream ended after {} of {n} events", out.len()),
        }
    }
    out
}

/// Takes one event from `stream` over a backlog of `shards` shards, then checks that its
/// readers stay within the read-ahead (one page out and one buffered per shard) and read
/// nothing more while the consumer stops polling for a (virtual) minute.
pub async fn assert_read_ahead_bounded(sim: &Simulator, stream: &mut ChangeStream, shards: u64) {
    let _ = take(stream, 1).await;
    // Time for readers on their own tasks to run as far ahead as they would.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let calls = sim.calls().get_records;
    assert!(
        calls <= 2 * shards,
        "{calls} GetRecords calls for one event from {shards} shards"
    );
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        sim.calls().get_records,
        calls,
        "readers ran ahead while the consumer slept"
    );
}

/// `(pk, v)` of an event's new image, or of its old image for removes.
pub fn pk_v(ev: &ChangeEvent) -> (String, u64) {
    let image = ev
        .raw_new_image()
        .or(ev.raw_old_image())
        .expect("event without image");
    let pk = match image.get("pk") {
        Some(AttributeValue::S(s)) => s.clone(),
        other => panic!("bad pk {other:?}"),
    };
    let v = match image.get("v") {
        Some(AttributeValue::N(n)) => n.parse().expect("v"),
        other => panic!("bad v {other:?}"),
    };
    (pk, v)
}

/// Checks the lineage guarantee: for every shard with a listed parent that delivered events,
/// the child's first event comes after the parent's last.
pub fn assert_parents_first(sim: &Simulator, events: &[ChangeEvent]) {
    let mut first: HashMap<&str, usize> = HashMap::new();
    let mut last: HashMap<&str, usize> = HashMap::new();
    for (i, ev) in events.iter().enumerate() {
        first.entry(ev.shard_id()).or_insert(i);
        last.insert(ev.shard_id(), i);
    }
    for shard in sim.shards() {
        let (Some(parent), Some(&child_first)) =
            (&shard.parent_shard_id, first.get(shard.shard_id.as_str()))
        else {
            continue;
        };
        if let Some(&parent_last) = last.get(parent.as_str()) {
            assert!(
                parent_last < child_first,
                "child {} started (event {child_first}) before parent {parent} ended (event {parent_last})",
                shard.shard_id
            );
        }
    }
}

/// Checks per-key order: each key's `v` values strictly increase.
pub fn assert_per_key_order(events: &[ChangeEvent]) {
    let mut seen: HashMap<String, u64> = HashMap::new();
    for ev in events {
        let (pk, v) = pk_v(ev);
        if let Some(prev) = seen.insert(pk.clone(), v) {
            assert!(prev < v, "key {pk}: v {v} after {prev}");
        }
    }
}

/// The error that ended a catch-up run of `builder`.
pub async fn error_of(builder: ChangeStreamBuilder) -> dynamodb_stream::Error {
    let results = drain(builder.until_caught_up(true).build().unwrap()).await;
    let n = results.len();
    match results.into_iter().last() {
        Some(Err(e)) => e,
        _ => panic!("the stream of {n} items ended without an error"),
    }
}

/// A current-thread runtime with paused time, for property tests.
pub fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime")
}
