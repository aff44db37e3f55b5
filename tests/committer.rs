//! The committer over the simulator: count and time thresholds, flush on close and at the
//! end of the stream, failed saves, cancellation, and resuming after a crash or a graceful
//! shutdown with exactly the events that were not saved.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dynamodb_stream::sim::{AttributeValue, Simulator};
use dynamodb_stream::store::{FileStore, MemoryStore};
use dynamodb_stream::{
    ChangeEvent, ChangeStream, Checkpoint, CheckpointStore, Committer, Error, ErrorKind, Result,
};
use futures::StreamExt;
use support::sim::{builder, resumed};
use tokio::time::Instant;

/// A memory store that records every save with its (tokio) time, and can fail or stall.
#[derive(Clone, Default)]
struct Recorder {
    inner: MemoryStore,
    saves: Arc<Mutex<Vec<(Instant, Checkpoint)>>>,
    fail_next: Arc<AtomicU32>,
    attempts: Arc<AtomicU32>,
    delay: Duration,
}

impl Recorder {
    /// A recorder whose every save takes `delay` (tokio time) before it succeeds or fails.
    fn slow(delay: Duration) -> Self {
        Self {
            delay,
            ..Self::default()
        }
    }

    /// Makes the next `n` saves fail with a store error.
    fn fail_saves(&self, n: u32) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    fn saves(&self) -> Vec<Checkpoint> {
        self.saves
            .lock()
            .unwrap()
            .iter()
            .map(|(_, cp)| cp.clone())
            .collect()
    }

    fn save_times(&self) -> Vec<Instant> {
        self.saves
            .lock()
            .unwrap()
            .iter()
            .map(|(at, _)| *at)
            .collect()
    }
}

impl CheckpointStore for Recorder {
    async fn load(&self, stream_arn: &str) -> Result<Option<Checkpoint>> {
        self.inner.load(stream_arn).await
    }

    async fn save(&self, checkpoint: &Checkpoint) -> Result<()> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let failing = self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(Error::store(
                "recorder: injected failure",
                std::io::Error::other("disk full"),
            ));
        }
        self.saves
            .lock()
            .unwrap()
            .push((Instant::now(), checkpoint.clone()));
        self.inner.save(checkpoint).await
    }
}

fn item(v: u64) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(format!("k{v}"))),
        ("v".to_owned(), AttributeValue::N(v.to_string())),
    ])
}

fn value(event: &ChangeEvent) -> u64 {
    match event.raw_new_image().and_then(|i| i.get("v")) {
        Some(AttributeValue::N(n)) => n.parse().unwrap(),
        other => panic!("no v in {other:?}"),
    }
}

/// A stream with records `0..n` in one shard.
fn sim_with(n: u64) -> Simulator {
    let sim = Simulator::new();
    for v in 0..n {
        sim.put_item(item(v));
    }
    sim
}

/// A committer saving to `store`, over a consumer of `sim` from `TRIM_HORIZON` (the committer's
/// default thresholds).
fn committer_over<C>(sim: &Simulator, store: C) -> Committer<ChangeStream, C>
where
    C: CheckpointStore + 'static,
{
    Committer::new(builder(sim).build().unwrap(), store)
}

/// The next event, failing the test if none comes within a (virtual) hour.
async fn next<S, C>(committer: &mut Committer<S, C>) -> ChangeEvent
where
    S: futures::Stream<Item = Result<ChangeEvent>>,
    C: CheckpointStore + 'static,
{
    tokio::time::timeout(Duration::from_secs(3600), committer.next())
        .await
        .expect("an event within an hour")
        .expect("the stream goes on")
        .expect("an event, not an error")
}

/// Consumes and acknowledges `n` events, returning them.
async fn consume<S, C>(committer: &mut Committer<S, C>, n: usize) -> Vec<ChangeEvent>
where
    S: futures::Stream<Item = Result<ChangeEvent>>,
    C: CheckpointStore + 'static,
{
    let mut out = Vec::new();
    for _ in 0..n {
        let event = next(committer).await;
        committer.ack(&event);
        out.push(event);
    }
    out
}

/// Consumes and acknowledges every event until the stream ends, returning them.
async fn consume_all<S, C>(committer: &mut Committer<S, C>) -> Vec<ChangeEvent>
where
    S: futures::Stream<Item = Result<ChangeEvent>>,
    C: CheckpointStore + 'static,
{
    let mut out = Vec::new();
    while let Some(event) = committer.next().await {
        let event = event.expect("an event, not an error");
        committer.ack(&event);
        out.push(event);
    }
    out
}

/// Closes `committer`, requiring its final save to fail with a store error.
async fn assert_close_fails<S, C>(committer: Committer<S, C>)
where
    S: futures::Stream<Item = Result<ChangeEvent>>,
    C: CheckpointStore + 'static,
{
    let err = committer.close().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store);
}

/// Requires `store` to hold `event`'s checkpoint for `sim`'s stream.
fn assert_holds(store: &MemoryStore, sim: &Simulator, event: &ChangeEvent) {
    assert_eq!(
        store.get(&sim.stream_arn()).as_ref(),
        Some(event.checkpoint())
    );
}

#[tokio::test(start_paused = true)]
async fn saves_every_n_acknowledgements_and_on_close() {
    let sim = sim_with(25);
    let store = Recorder::default();
    let mut committer = committer_over(&sim, store.clone())
        .every(10)
        .interval(Duration::ZERO);
    let events = consume(&mut committer, 25).await;
    // The 10th and 20th acknowledgements were saved when the next event was asked for.
    assert_eq!(
        store.saves(),
        vec![
            events[9].checkpoint().clone(),
            events[19].checkpoint().clone()
        ]
    );
    assert_eq!(committer.saved(), Some(events[19].checkpoint()));

    let last = committer.close().await.unwrap();
    assert_eq!(last.as_ref(), Some(events[24].checkpoint()));
    assert_eq!(store.saves().len(), 3);
    assert_holds(&store.inner, &sim, &events[24]);
}

#[tokio::test(start_paused = true)]
async fn unacknowledged_events_are_never_saved() {
    let sim = sim_with(10);
    let store = Recorder::default();
    let mut committer = committer_over(&sim, store.clone()).every(1);
    let first = consume(&mut committer, 3).await;
    // Received but not processed: not acknowledged.
    for _ in 0..4 {
        next(&mut committer).await;
    }
    assert_eq!(
        committer.close().await.unwrap().as_ref(),
        Some(first[2].checkpoint())
    );
    assert_eq!(store.saves().last(), Some(first[2].checkpoint()));
}

#[tokio::test(start_paused = true)]
async fn saves_after_the_interval_even_while_the_stream_is_idle() {
    let sim = sim_with(3);
    let store = Recorder::default();
    let mut committer = committer_over(&sim, store.clone())
        .every(100)
        .interval(Duration::from_secs(5));
    let first_ack = Instant::now();
    let events = consume(&mut committer, 3).await;
    assert!(store.saves().is_empty(), "neither threshold reached yet");

    // No more records: the committer waits on an idle stream, and saves on time meanwhile.
    let idle = tokio::time::timeout(Duration::from_secs(10), committer.next()).await;
    assert!(idle.is_err(), "no event should come");
    assert_eq!(store.saves(), vec![events[2].checkpoint().clone()]);
    let waited = store.save_times()[0] - first_ack;
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
        "saved {waited:?} after the first acknowledgement"
    );

    // Nothing new acknowledged: no more saves, however long it idles.
    let _ = tokio::time::timeout(Duration::from_secs(60), committer.next()).await;
    assert_eq!(store.saves().len(), 1);

    // Whichever comes first: more records, two acknowledgements, then the count wins.
    let mut committer = committer.every(2);
    sim.put_item(item(3));
    sim.put_item(item(4));
    sim.put_item(item(5));
    let acked_at = Instant::now();
    let more = consume(&mut committer, 3).await;
    assert_eq!(store.saves().len(), 2, "the count triggered a save");
    assert_eq!(store.saves()[1], *more[1].checkpoint());
    assert!(store.save_times()[1] - acked_at < Duration::from_secs(5));
    assert_eq!(value(&more[2]), 5);
}

#[tokio::test(start_paused = true)]
async fn the_end_of_the_stream_saves_the_last_acknowledgement() {
    let sim = sim_with(7);
    let store = Recorder::default();
    let stream = builder(&sim).until_caught_up(true).build().unwrap();
    let mut committer = Committer::new(stream, store.clone())
        .every(100)
        .interval(Duration::ZERO);
    let last = consume_all(&mut committer)
        .await
        .pop()
        .map(ChangeEvent::into_checkpoint);
    assert_eq!(store.saves(), vec![last.clone().unwrap()]);
    assert!(committer.next().await.is_none(), "fused");
    // Nothing left to save.
    assert_eq!(committer.close().await.unwrap(), last);
    assert_eq!(store.saves().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn closing_without_acknowledgements_saves_nothing() {
    let sim = sim_with(3);
    let store = Recorder::default();
    let mut committer = committer_over(&sim, store.clone());
    next(&mut committer).await;
    assert_eq!(committer.close().await.unwrap(), None);
    assert!(store.saves().is_empty());
    assert_eq!(store.load(&sim.stream_arn()).await.unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn a_failed_save_is_an_error_item_and_is_retried() {
    let sim = sim_with(10);
    let store = Recorder::default();
    store.fail_saves(1);
    let mut committer = committer_over(&sim, store.clone())
        .every(2)
        .interval(Duration::ZERO);
    consume(&mut committer, 2).await;

    let err = committer.next().await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store);
    assert!(store.saves().is_empty());
    assert_eq!(committer.saved(), None);

    // The stream goes on; the unsaved position is saved at the next threshold.
    let third = next(&mut committer).await;
    assert_eq!(value(&third), 2, "no event was lost to the error");
    committer.ack(&third);
    assert!(store.saves().is_empty());
    let fourth = next(&mut committer).await;
    committer.ack(&fourth);
    let fifth = next(&mut committer).await;
    assert_eq!(value(&fifth), 4);
    assert_eq!(
        store.saves(),
        vec![fourth.checkpoint().clone()],
        "the newer position is saved"
    );

    // A failing final save is reported by close.
    committer.ack(&fifth);
    store.fail_saves(1);
    assert_close_fails(committer).await;
}

#[tokio::test(start_paused = true)]
async fn close_tries_a_failing_final_save_once() {
    let sim = sim_with(5);
    let store = Recorder::slow(Duration::from_secs(1));
    store.fail_saves(100);
    let mut committer = committer_over(&sim, store.clone())
        .every(0)
        .interval(Duration::ZERO);
    consume(&mut committer, 2).await;
    assert_close_fails(committer).await;
    assert_eq!(store.attempts.load(Ordering::SeqCst), 1);

    // With a save in flight at close: it finishes (failing), then one more attempt.
    let store = Recorder::slow(Duration::from_secs(1));
    store.fail_saves(100);
    let mut committer = committer_over(&sim, store.clone()).every(1);
    consume(&mut committer, 1).await;
    let gave_up = tokio::time::timeout(Duration::from_millis(500), committer.next()).await;
    assert!(gave_up.is_err(), "mid-save");
    assert_close_fails(committer).await;
    assert_eq!(store.attempts.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn dropping_a_pending_next_during_a_save_loses_nothing() {
    let sim = sim_with(6);
    let store = Recorder::slow(Duration::from_secs(2));
    let mut committer = committer_over(&sim, store.clone())
        .every(3)
        .interval(Duration::ZERO);
    let events = consume(&mut committer, 3).await;

    // The save takes 2 s; give up on the next event after 1 s, mid-save.
    let gave_up = tokio::time::timeout(Duration::from_secs(1), committer.next()).await;
    assert!(gave_up.is_err());
    assert!(store.saves().is_empty(), "still saving");

    // The save carries on at the next poll, before the next event.
    let fourth = next(&mut committer).await;
    assert_eq!(value(&fourth), 3);
    assert_eq!(store.saves(), vec![events[2].checkpoint().clone()]);
    committer.ack(&fourth);
    assert_eq!(
        committer.close().await.unwrap().as_ref(),
        Some(fourth.checkpoint())
    );
}

#[tokio::test(start_paused = true)]
async fn after_a_crash_the_rest_arrives_and_only_what_followed_the_last_save_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoint");
    let sim = sim_with(30);

    let store = FileStore::new(&path);
    let stream = resumed(builder(&sim), &store).await;
    let mut committer = Committer::new(stream, store)
        .every(5)
        .interval(Duration::ZERO);
    let first = consume(&mut committer, 12).await;
    assert_eq!(
        first.iter().map(value).collect::<Vec<_>>(),
        (0..12).collect::<Vec<_>>()
    );
    drop(committer); // a crash: no close

    // The file holds the 10th event (saved when the 11th was asked for).
    let store = FileStore::new(&path);
    assert_eq!(
        store.load(&sim.stream_arn()).await.unwrap().as_ref(),
        Some(first[9].checkpoint())
    );
    let stream = resumed(builder(&sim).until_caught_up(true), &store).await;
    let rest: Vec<u64> = stream.map(|e| value(&e.unwrap())).collect().await;
    // Events 10 and 11 were processed but not saved: they come again. Nothing else does.
    assert_eq!(rest, (10..30).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn after_a_graceful_shutdown_exactly_the_rest_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoint");
    let sim = sim_with(30);
    let mut seen = Vec::new();

    // Three runs, each stopped gracefully mid-stream, then one to the end.
    for run in 0..4 {
        let store = FileStore::new(&path);
        let stream = resumed(builder(&sim).until_caught_up(run == 3), &store).await;
        let mut committer = Committer::new(stream, store)
            .every(4)
            .interval(Duration::from_secs(1));
        if run < 3 {
            seen.extend(consume(&mut committer, 7).await.iter().map(value));
        } else {
            seen.extend(consume_all(&mut committer).await.iter().map(value));
        }
        committer.close().await.unwrap();
    }
    assert_eq!(
        seen,
        (0..30).collect::<Vec<_>>(),
        "every event once, in order"
    );
}

#[tokio::test(start_paused = true)]
async fn a_lent_store_stays_usable() {
    let sim = sim_with(4);
    let store = Arc::new(MemoryStore::new());
    let mut committer = committer_over(&sim, store.clone()).every(1);
    let events = consume(&mut committer, 4).await;
    committer.close().await.unwrap();
    assert_holds(&store, &sim, &events[3]);
}
