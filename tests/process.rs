//! `process_by_key`: concurrency across items, order within one, and checkpoints only once
//! everything before them is done, under random handler delays and failures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dynamodb_stream::sim::Simulator;
use dynamodb_stream::{ChangeEvent, ChangeStreamExt, Checkpoint, ErrorKind};
use futures::StreamExt;
use proptest::prelude::*;
use support::sim::{builder, drain_ok, item, paused_runtime, pk_v};

/// Every event of a simulator with `shards` shards and `records` writes over `keys` keys.
async fn events(shards: usize, records: u64, keys: u64) -> Vec<ChangeEvent> {
    let sim = Simulator::builder().initial_shards(shards).seed(3).build();
    for v in 0..records {
        sim.put_item(item(&format!("k{}", v % keys), v));
    }
    drain_ok(builder(&sim).until_caught_up(true).build().unwrap()).await
}

/// What the handlers did, in the order they did it.
#[derive(Debug)]
enum Seen {
    Start(usize),
    End(usize),
    /// The combinator yielded its `n`th item.
    Yielded(usize),
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn per_key_order_and_the_checkpoint_rule_hold(
        records in 1u64..80,
        keys in 1u64..8,
        concurrency in 1usize..6,
        delays in proptest::collection::vec(0u64..50, 80),
        fail_at in proptest::option::of(0usize..80),
    ) {
        paused_runtime().block_on(async {
            let events = events(2, records, keys).await;
            let n = events.len();
            let index: HashMap<String, usize> = events
                .iter()
                .enumerate()
                .map(|(i, e)| (e.event_id().to_owned(), i))
                .collect();
            let checkpoints: Vec<Checkpoint> = events.iter().map(|e| e.checkpoint().clone()).collect();
            let keys_of: Vec<String> = events.iter().map(|e| pk_v(e).0).collect();
            let seen = Arc::new(Mutex::new(Vec::new()));
            let running = Arc::new(Mutex::new(0usize));
            let input = futures::stream::iter(events.into_iter().map(Ok));
            let (s, r, idx) = (seen.clone(), running.clone(), index.clone());
            let mut done = input
                .process_by_key(concurrency, move |event: ChangeEvent| {
                    let (seen, running) = (s.clone(), r.clone());
                    let i = idx[event.event_id()];
                    let delay = Duration::from_millis(delays[i % delays.len()]);
                    async move {
                        {
                            let mut now = running.lock().unwrap();
                            *now += 1;
                            assert!(*now <= concurrency, "{now} handlers at once");
                        }
                        seen.lock().unwrap().push(Seen::Start(i));
                        tokio::time::sleep(delay).await;
                        seen.lock().unwrap().push(Seen::End(i));
                        *running.lock().unwrap() -= 1;
                        if fail_at == Some(i) {
                            return Err(std::io::Error::other("refused"));
                        }
                        Ok(())
                    }
                });
            let mut out = Vec::new();
            let drained = tokio::time::timeout(Duration::from_secs(3600), async {
                while let Some(item) = done.next().await {
                    seen.lock().unwrap().push(Seen::Yielded(out.len()));
                    out.push(item);
                }
            })
            .await;
            assert!(drained.is_ok(), "the combinator stalled after {} items", out.len());
            // The checkpoint rule: checkpoints in the stream's order, each yielded after its
            // event and every earlier one ended; the failure after them, and the end.
            let seen = seen.lock().unwrap();
            let ended_at: HashMap<usize, usize> = seen
                .iter()
                .enumerate()
                .filter_map(|(t, s)| match s { Seen::End(i) => Some((*i, t)), _ => None })
                .collect();
            let yielded_at: HashMap<usize, usize> = seen
                .iter()
                .enumerate()
                .filter_map(|(t, s)| match s { Seen::Yielded(n) => Some((*n, t)), _ => None })
                .collect();
            let failed = fail_at.filter(|f| *f < n);
            let expected = failed.unwrap_or(n);
            let yielded: Vec<&Checkpoint> = out.iter().filter_map(|r| r.as_ref().ok()).collect();
            assert_eq!(yielded.len(), expected, "checkpoints of every event before the failure");
            for (i, checkpoint) in yielded.iter().enumerate() {
                assert_eq!(*checkpoint, &checkpoints[i], "in the stream's order");
                let at = yielded_at[&i];
                assert!(
                    (0..=i).all(|j| ended_at.get(&j).is_some_and(|t| *t < at)),
                    "checkpoint {i} yielded before an event up to it ended"
                );
            }
            match failed {
                Some(_) => {
                    let err = out.last().unwrap().as_ref().unwrap_err();
                    assert_eq!(err.kind(), ErrorKind::Handler);
                    assert!(std::error::Error::source(err).is_some());
                }
                None => assert!(out.iter().all(Result::is_ok)),
            }
            // Per-key order: an item's next event starts only after its previous one ended.
            let mut last_end: HashMap<&str, usize> = HashMap::new();
            let mut started: HashMap<&str, usize> = HashMap::new();
            for (t, s) in seen.iter().enumerate() {
                match s {
                    Seen::Start(i) => {
                        let key = keys_of[*i].as_str();
                        if let Some(prev) = started.insert(key, *i) {
                            assert!(prev < *i, "key {key}: event {i} started after {prev}");
                            assert!(last_end.get(key).is_some_and(|e| *e < t), "key {key}: {i} started before {prev} ended");
                        }
                    }
                    Seen::End(i) => {
                        last_end.insert(keys_of[*i].as_str(), t);
                    }
                    Seen::Yielded(_) => {}
                }
            }
        });
    }
}

#[tokio::test(start_paused = true)]
async fn different_items_run_concurrently() {
    let events = events(1, 8, 8).await;
    let input = futures::stream::iter(events.into_iter().map(Ok));
    let started = tokio::time::Instant::now();
    let out: Vec<_> = input
        .process_by_key(8, |_event| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<(), std::io::Error>(())
        })
        .collect()
        .await;
    assert_eq!(out.len(), 8);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "8 items took {:?}",
        started.elapsed()
    );
}
