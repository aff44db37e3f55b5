//! The memory store, the store trait's blanket implementations, a store written outside the
//! crate, and resuming a stream from a store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use dynamodb_stream::sim::Simulator;
use dynamodb_stream::store::MemoryStore;
use dynamodb_stream::{
    ChangeStream, Checkpoint, CheckpointStore, Error, ErrorKind, Result, StartPosition,
};
use futures::StreamExt;
use support::sim::{item, resumed};

fn checkpoint(arn: &str, n: u64) -> Checkpoint {
    let body = format!("ddbs1;{arn};shardId-1=s{n:021}");
    let crc = crc32fast::hash(body.as_bytes());
    format!("{body};c{crc:08x}").parse().unwrap()
}

const A: &str = "arn:aws:dynamodb:us-east-1:000000000000:table/a/stream/1";
const B: &str = "arn:aws:dynamodb:us-east-1:000000000000:table/b/stream/1";

#[tokio::test]
async fn keeps_one_checkpoint_per_stream_shared_by_clones() {
    let store = MemoryStore::new();
    assert_eq!(store.load(A).await.unwrap(), None);
    store.save(&checkpoint(A, 1)).await.unwrap();
    store.save(&checkpoint(B, 7)).await.unwrap();
    store.save(&checkpoint(A, 2)).await.unwrap();
    assert_eq!(store.load(A).await.unwrap(), Some(checkpoint(A, 2)));
    assert_eq!(store.load(B).await.unwrap(), Some(checkpoint(B, 7)));

    let clone = store.clone();
    clone.save(&checkpoint(B, 8)).await.unwrap();
    assert_eq!(store.get(B), Some(checkpoint(B, 8)));
}

/// Stores can be lent: `&S`, `Arc<S>` and `Box<S>` are stores too.
#[tokio::test]
async fn references_arcs_and_boxes_are_stores() {
    async fn round_trip(store: impl CheckpointStore, n: u64) {
        store.save(&checkpoint(A, n)).await.unwrap();
        assert_eq!(store.load(A).await.unwrap(), Some(checkpoint(A, n)));
    }
    let store = MemoryStore::new();
    round_trip(&store, 1).await;
    round_trip(Arc::new(store.clone()), 2).await;
    round_trip(Box::new(store.clone()), 3).await;
    assert_eq!(store.get(A), Some(checkpoint(A, 3)));

    // The futures are Send: a store can be used from spawned tasks.
    let shared = Arc::new(store);
    let task = tokio::spawn({
        let shared = shared.clone();
        async move { shared.load(A).await }
    });
    assert_eq!(task.await.unwrap().unwrap(), Some(checkpoint(A, 3)));
}

/// A store written outside the crate: text in a map, with its own refusals.
#[derive(Default)]
struct TextStore {
    texts: Mutex<HashMap<String, String>>,
    read_only: bool,
    owned_by_someone_else: bool,
}

impl CheckpointStore for TextStore {
    async fn load(&self, stream_arn: &str) -> Result<Option<Checkpoint>> {
        let texts = self.texts.lock().unwrap();
        texts.get(stream_arn).map(|t| t.parse()).transpose()
    }

    async fn save(&self, checkpoint: &Checkpoint) -> Result<()> {
        if self.read_only {
            let io = std::io::Error::from(std::io::ErrorKind::ReadOnlyFilesystem);
            return Err(Error::store("text store: read-only", io));
        }
        if self.owned_by_someone_else {
            return Err(Error::conflict("text store: owned by someone else"));
        }
        let mut texts = self.texts.lock().unwrap();
        texts.insert(checkpoint.stream_arn().to_owned(), checkpoint.to_string());
        Ok(())
    }
}

#[tokio::test]
async fn stores_outside_the_crate_report_typed_errors() {
    let store = TextStore::default();
    store.save(&checkpoint(A, 5)).await.unwrap();
    assert_eq!(store.load(A).await.unwrap(), Some(checkpoint(A, 5)));

    store
        .texts
        .lock()
        .unwrap()
        .insert(B.to_owned(), "ddbs1;garbage".to_owned());
    let err = store.load(B).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidCheckpoint);

    let read_only = TextStore {
        read_only: true,
        ..TextStore::default()
    };
    let err = read_only.save(&checkpoint(A, 1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store);
    assert!(
        std::error::Error::source(&err).is_some(),
        "the I/O error is the source"
    );

    let taken = TextStore {
        owned_by_someone_else: true,
        ..TextStore::default()
    };
    let err = taken.save(&checkpoint(A, 1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
}

#[tokio::test(start_paused = true)]
async fn resume_from_store_continues_after_the_saved_event_or_keeps_the_start() {
    let sim = Simulator::new();
    for v in 0..10 {
        sim.put_item(item(&format!("k{v}"), v));
    }
    let store = MemoryStore::new();
    let builder = || {
        ChangeStream::builder(sim.client(), sim.stream_arn())
            .start(StartPosition::TrimHorizon)
            .until_caught_up(true)
    };

    // Nothing saved: the start position applies.
    let stream = resumed(builder(), &store).await;
    let events: Vec<_> = stream.map(|e| e.unwrap()).collect().await;
    assert_eq!(events.len(), 10);
    store.save(events[3].checkpoint()).await.unwrap();

    // Saved: exactly the events after it.
    let stream = resumed(builder(), &store).await;
    let rest: Vec<_> = stream
        .map(|e| e.unwrap().event_id().to_owned())
        .collect()
        .await;
    let expected: Vec<_> = events[4..]
        .iter()
        .map(|e| e.event_id().to_owned())
        .collect();
    assert_eq!(rest, expected);

    // A store holding only another stream's checkpoint has nothing for this one.
    let other = MemoryStore::new();
    other.save(&checkpoint(B, 1)).await.unwrap();
    assert_eq!(resumed(builder(), &other).await.count().await, 10);
}
