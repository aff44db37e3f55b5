//! The batch helpers: order, the first failure's sequence number in the partial-batch
//! response, panics caught as that record's failure, and the per-key concurrent mode's rules.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use dynamodb_stream::Change;
use dynamodb_stream::lambda::{DynamoDbEventResponse, Event, process_by_key, process_in_order};
use proptest::prelude::*;
use serde_json::{Value, json};

/// The sequence number of record `i`.
fn seq(i: usize) -> String {
    format!("{:021}", 100_000_000_000_000_000_000_u128 + i as u128)
}

/// A Lambda record for item `pk`, at position `i`.
fn record(i: usize, pk: &str) -> Value {
    json!({
        "eventID": format!("id-{i}"), "eventName": "MODIFY", "eventVersion": "1.1",
        "eventSource": "aws:dynamodb", "awsRegion": "eu-west-1",
        "eventSourceARN": "arn:aws:dynamodb:eu-west-1:123456789012:table/T/stream/2026-01-01T00:00:00.000",
        "dynamodb": {
            "ApproximateCreationDateTime": 1_795_461_826 + i,
            "Keys": {"pk": {"S": pk}},
            "NewImage": {"pk": {"S": pk}, "i": {"N": i.to_string()}},
            "SequenceNumber": seq(i), "SizeBytes": 30, "StreamViewType": "NEW_IMAGE"
        }
    })
}

fn event(records: Vec<Value>) -> Event {
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

/// `n` records, each of its own item.
fn batch(n: usize) -> Event {
    event((0..n).map(|i| record(i, &format!("k{i}"))).collect())
}

/// The position a change stands at in these batches.
fn index(change: &Change) -> usize {
    change.event_id()["id-".len()..].parse().unwrap()
}

fn response_json(response: &DynamoDbEventResponse) -> String {
    serde_json::to_string(response).unwrap()
}

fn failed_at(i: usize) -> String {
    format!(
        r#"{{"batchItemFailures":[{{"itemIdentifier":"{}"}}]}}"#,
        seq(i)
    )
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(future)
}

#[test]
fn every_change_in_order_and_an_empty_list_when_all_succeed() {
    let mut seen = Vec::new();
    let response = block_on(process_in_order(batch(5), async |c: &Change| {
        seen.push(index(c));
        Ok::<_, String>(())
    }));
    assert_eq!(seen, [0, 1, 2, 3, 4]);
    assert_eq!(response_json(&response), r#"{"batchItemFailures":[]}"#);
    let empty = block_on(process_in_order(batch(0), async |_: &Change| {
        Err("never called")
    }));
    assert_eq!(response_json(&empty), r#"{"batchItemFailures":[]}"#);
}

#[test]
fn the_first_failure_stops_the_batch_and_is_named() {
    for failing in [0, 2, 4] {
        let mut seen = Vec::new();
        let response = block_on(process_in_order(batch(5), async |c: &Change| {
            seen.push(index(c));
            tokio::task::yield_now().await;
            if index(c) >= failing {
                Err(format!("no {}", index(c)))
            } else {
                Ok(())
            }
        }));
        assert_eq!(
            seen,
            (0..=failing).collect::<Vec<_>>(),
            "failing at {failing}"
        );
        assert_eq!(response_json(&response), failed_at(failing));
    }
}

#[test]
fn a_panic_in_the_handler_is_that_records_failure() {
    for failing in [0, 2, 4] {
        let mut seen = Vec::new();
        let response = block_on(process_in_order(batch(5), async |c: &Change| {
            seen.push(index(c));
            assert_ne!(index(c), failing, "the handler's own bug");
            Ok::<_, String>(())
        }));
        assert_eq!(seen, (0..=failing).collect::<Vec<_>>());
        assert_eq!(response_json(&response), failed_at(failing));
    }
    // The runtime survives: the same process goes on with the next batch.
    let response = block_on(process_in_order(batch(2), async |_: &Change| {
        Ok::<_, String>(())
    }));
    assert!(response.batch_item_failures.is_empty());
}

#[test]
fn a_malformed_record_fails_where_it_stands() {
    let mut records: Vec<Value> = (0..4).map(|i| record(i, "k")).collect();
    records[2]["eventName"] = json!("UPSERT");
    let mut seen = Vec::new();
    let response = block_on(process_in_order(
        event(records.clone()),
        async |c: &Change| {
            seen.push(index(c));
            Ok::<_, String>(())
        },
    ));
    assert_eq!(seen, [0, 1]);
    assert_eq!(response_json(&response), failed_at(2));

    // Without a sequence number there is nothing to name: a null identifier, which Lambda
    // takes as a failure of the whole batch.
    records[2]["eventName"] = json!("MODIFY");
    records[2]["dynamodb"]
        .as_object_mut()
        .unwrap()
        .remove("SequenceNumber");
    let response = block_on(process_in_order(event(records), async |_: &Change| {
        Ok::<_, String>(())
    }));
    assert_eq!(
        response_json(&response),
        r#"{"batchItemFailures":[{"itemIdentifier":null}]}"#
    );
}

#[test]
fn by_key_runs_items_concurrently_and_names_the_lowest_failure() {
    // k0 is slow; k1 fails at its second change (index 3) while k0's index 2 still runs.
    let keys = ["k0", "k1", "k0", "k1", "k0"];
    let records = keys.iter().enumerate().map(|(i, k)| record(i, k)).collect();
    let seen = Mutex::new(Vec::new());
    let response = block_on(process_by_key(event(records), 4, async |c: &Change| {
        let i = index(c);
        if i.is_multiple_of(2) {
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        seen.lock().unwrap().push(i);
        if i == 3 { Err("k1 failed") } else { Ok(()) }
    }));
    assert_eq!(response_json(&response), failed_at(3));
    // 1 and 3 finish first; 0 and 2 are below the failure and must run; 4 is above it and
    // is skipped (Lambda delivers it again).
    assert_eq!(*seen.lock().unwrap(), [1, 3, 0, 2]);
}

/// What one handler call does in the property test.
#[derive(Clone, Copy, Debug)]
enum Act {
    Succeed,
    Fail,
    Panic,
}

/// One generated record: its item, whether it is malformed, what its handler call does and
/// how long it takes (virtual milliseconds).
#[derive(Clone, Copy, Debug)]
struct Gen {
    item: usize,
    malformed: bool,
    act: Act,
    millis: u64,
}

impl Gen {
    fn fails(&self) -> bool {
        self.malformed || !matches!(self.act, Act::Succeed)
    }
}

fn records() -> impl Strategy<Value = Vec<Gen>> {
    let act = prop_oneof![6 => Just(Act::Succeed), 1 => Just(Act::Fail), 1 => Just(Act::Panic)];
    let one = (0..5_usize, proptest::bool::weighted(0.05), act, 0..4_u64).prop_map(
        |(item, malformed, act, millis)| Gen {
            item,
            malformed,
            act,
            millis,
        },
    );
    proptest::collection::vec(one, 0..24)
}

/// A handler call beginning or ending, in the order they happened.
#[derive(Clone, Copy, Debug)]
enum Step {
    Start(usize),
    End(usize),
}

/// Runs the generated batch through `process_by_key`: the response and the calls' steps.
fn run_by_key(gens: &[Gen], limit: usize) -> (DynamoDbEventResponse, Vec<Step>) {
    let mut records: Vec<Value> = gens
        .iter()
        .enumerate()
        .map(|(i, g)| record(i, &format!("k{}", g.item)))
        .collect();
    for (i, g) in gens.iter().enumerate() {
        if g.malformed {
            records[i]["eventName"] = json!("UPSERT");
        }
    }
    let steps = Mutex::new(Vec::new());
    let response = block_on(process_by_key(event(records), limit, async |c: &Change| {
        let i = index(c);
        steps.lock().unwrap().push(Step::Start(i));
        tokio::time::sleep(Duration::from_millis(gens[i].millis)).await;
        steps.lock().unwrap().push(Step::End(i));
        match gens[i].act {
            Act::Succeed => Ok(()),
            Act::Fail => Err(format!("record {i} failed")),
            Act::Panic => panic!("record {i} panicked"),
        }
    }));
    (response, steps.into_inner().unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn by_key_keeps_each_items_order_and_reports_the_lowest_failure(
        gens in records(),
        limit in 1..5_usize,
    ) {
        let (response, steps) = run_by_key(&gens, limit);
        let lowest = gens.iter().position(Gen::fails);
        // The reported record is the lowest failing one of the whole batch ...
        let expected = match lowest {
            Some(i) => failed_at(i),
            None => r#"{"batchItemFailures":[]}"#.to_owned(),
        };
        prop_assert_eq!(response_json(&response), expected);
        // ... because every record below it ran (and succeeded); none ran twice, and no
        // malformed record reached the handler.
        let started: Vec<usize> = steps
            .iter()
            .filter_map(|s| match s { Step::Start(i) => Some(*i), Step::End(_) => None })
            .collect();
        let distinct: BTreeSet<usize> = started.iter().copied().collect();
        prop_assert_eq!(distinct.len(), started.len(), "a record ran twice");
        let below = lowest.unwrap_or(gens.len());
        prop_assert!(
            (0..below).all(|i| distinct.contains(&i)),
            "a record below the failure did not run"
        );
        prop_assert!(distinct.iter().all(|&i| !gens[i].malformed));
        // Per item: in the batch's order, one call at a time, nothing after the item's
        // failure; and at most `limit` calls at once.
        let mut last: HashMap<usize, usize> = HashMap::new();
        let mut busy: BTreeSet<usize> = BTreeSet::new();
        let mut running = 0;
        for step in steps {
            match step {
                Step::Start(i) => {
                    let item = gens[i].item;
                    prop_assert!(busy.insert(item), "item {} ran two calls at once", item);
                    if let Some(&before) = last.get(&item) {
                        prop_assert!(before < i, "item {}: {} ran after {}", item, i, before);
                        prop_assert!(
                            !gens[before].fails(),
                            "item {}: {} ran after its failure at {}", item, i, before
                        );
                    }
                    last.insert(item, i);
                    running += 1;
                    prop_assert!(running <= limit, "{} calls at once, limit {}", running, limit);
                }
                Step::End(i) => {
                    busy.remove(&gens[i].item);
                    running -= 1;
                }
            }
        }
    }
}

#[test]
fn the_helpers_futures_can_be_spawned() {
    fn assert_send<T: Send>(_: &T) {}
    let in_order = process_in_order(batch(1), async |_: &Change| Ok::<_, String>(()));
    assert_send(&in_order);
    let by_key = process_by_key(batch(1), 2, async |_: &Change| Ok::<_, String>(()));
    assert_send(&by_key);
}
