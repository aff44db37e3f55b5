//! The property the Lambda conversion promises: a record read by a `ChangeStream` and the
//! same record in the form Lambda delivers it give equal changes, field by field (except the
//! shard, which a Lambda record does not name).
//!
//! Generated writes go into the simulator; the stream reads them through the SDK. The Lambda
//! form is built from the simulator's raw GetRecords JSON, as the event source mapping does:
//! each shard's records as one batch, with `eventSourceARN` added and `userIdentity` in
//! Lambda's camel case.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;

use aws_sdk_dynamodbstreams::primitives::Blob;
use dynamodb_stream::sim::{AttributeValue as A, Item, Simulator, StreamViewType};
use dynamodb_stream::{Change, ChangeStream, StartPosition, lambda};
use proptest::collection::{btree_map, btree_set, vec};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{Value, json};
use support::sim::{drain_ok, paused_runtime};

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        "-?[1-9][0-9]{0,37}",
        "-?[0-9]{1,5}\\.[0-9]{1,30}",
        "[1-9]\\.[0-9]{1,10}E-?[1-9][0-9]?",
        Just("12345678901234567890.123456789".to_owned()),
    ]
}

fn bytes(min: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), min..6)
}

/// Any attribute value, nested up to three levels.
fn value() -> impl Strategy<Value = A> {
    let leaf = prop_oneof![
        ".{0,8}".prop_map(A::S),
        number().prop_map(A::N),
        bytes(0).prop_map(|b| A::B(Blob::new(b))),
        any::<bool>().prop_map(A::Bool),
        Just(A::Null(true)),
        btree_set("[a-z\u{e9}\"\\\\]{1,4}", 1..4).prop_map(|s| A::Ss(s.into_iter().collect())),
        btree_set(number(), 1..4).prop_map(|s| A::Ns(s.into_iter().collect())),
        btree_set(bytes(1), 1..4).prop_map(|s| A::Bs(s.into_iter().map(Blob::new).collect())),
    ];
    leaf.prop_recursive(3, 32, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(A::L),
            btree_map("[a-z]{1,3}", inner, 0..4).prop_map(|m| A::M(m.into_iter().collect())),
        ]
    })
}

#[derive(Clone, Debug)]
enum Write {
    Put(u8, BTreeMap<String, A>),
    Delete(u8),
    Expire(u8),
}

fn writes() -> impl Strategy<Value = Vec<Write>> {
    let write = prop_oneof![
        4 => (0..4_u8, btree_map("[a-z]{1,3}", value(), 0..5)).prop_map(|(k, a)| Write::Put(k, a)),
        1 => (0..4_u8).prop_map(Write::Delete),
        1 => (0..4_u8).prop_map(Write::Expire),
    ];
    vec(write, 1..16)
}

fn view() -> impl Strategy<Value = StreamViewType> {
    prop_oneof![
        Just(StreamViewType::KeysOnly),
        Just(StreamViewType::NewImage),
        Just(StreamViewType::OldImage),
        Just(StreamViewType::NewAndOldImages),
    ]
}

fn key(k: u8) -> Item {
    Item::from([("pk".to_owned(), A::S(format!("k{k}")))])
}

fn apply(sim: &Simulator, writes: &[Write]) {
    for write in writes {
        match write {
            Write::Put(k, attributes) => {
                let mut item = key(*k);
                item.extend(
                    attributes
                        .iter()
                        .map(|(n, v)| (format!("a_{n}"), v.clone())),
                );
                sim.put_item(item);
            }
            Write::Delete(k) => drop(sim.delete_item(key(*k))),
            Write::Expire(k) => drop(sim.ttl_delete(key(*k))),
        }
    }
}

fn call(sim: &Simulator, op: &str, body: Value) -> Value {
    let (status, body) = sim.handle(op, body.to_string().as_bytes());
    assert_eq!(status, 200, "{op}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

/// Every record of `shard`, as the service's JSON.
fn raw_records(sim: &Simulator, shard: &str) -> Vec<Value> {
    let start = json!({
        "StreamArn": sim.stream_arn(), "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON",
    });
    let mut iterator = call(sim, "GetShardIterator", start)["ShardIterator"].clone();
    let mut records = Vec::new();
    while iterator.is_string() {
        let page = call(sim, "GetRecords", json!({ "ShardIterator": iterator }));
        let page_records = page["Records"].as_array().cloned().unwrap_or_default();
        if page_records.is_empty() {
            break; // caught up: nothing more was written
        }
        records.extend(page_records);
        iterator = page["NextShardIterator"].clone();
    }
    records
}

/// What Lambda hands a function for those records: one batch, in Lambda's field names.
fn lambda_event(sim: &Simulator, records: Vec<Value>) -> lambda::Event {
    let records: Vec<Value> = records
        .into_iter()
        .map(|mut record| {
            let object = record.as_object_mut().unwrap();
            object.insert("eventSourceARN".into(), json!(sim.stream_arn()));
            if let Some(identity) = object.remove("userIdentity") {
                object.insert(
                    "userIdentity".into(),
                    json!({"type": identity["Type"], "principalId": identity["PrincipalId"]}),
                );
            }
            record
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

fn assert_same(stream: &Change, lambda: &Change) -> Result<(), TestCaseError> {
    prop_assert_eq!(stream.kind(), lambda.kind());
    prop_assert_eq!(stream.event_id(), lambda.event_id());
    prop_assert_eq!(stream.sequence_number(), lambda.sequence_number());
    prop_assert_eq!(stream.raw_keys(), lambda.raw_keys());
    prop_assert_eq!(stream.raw_new_image(), lambda.raw_new_image());
    prop_assert_eq!(stream.raw_old_image(), lambda.raw_old_image());
    prop_assert_eq!(
        stream.approximate_creation_time(),
        lambda.approximate_creation_time()
    );
    prop_assert!(stream.approximate_creation_time().is_some());
    prop_assert_eq!(stream.size_bytes(), lambda.size_bytes());
    prop_assert_eq!(stream.view_type(), lambda.view_type());
    prop_assert_eq!(stream.user_identity(), lambda.user_identity());
    prop_assert_eq!(stream.aws_region(), lambda.aws_region());
    prop_assert_eq!(stream.is_ttl_delete(), lambda.is_ttl_delete());
    prop_assert_eq!(stream.stream_arn(), lambda.stream_arn());
    // By design: the stream names the shard, a Lambda record cannot.
    prop_assert!(stream.shard_id().is_some());
    prop_assert_eq!(lambda.shard_id(), None);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_stream_record_and_its_lambda_form_are_the_same_change(
        writes in writes(),
        view in view(),
        shards in 1..3_usize,
    ) {
        let sim = Simulator::builder().view_type(view).initial_shards(shards).build();
        apply(&sim, &writes);
        let events = paused_runtime().block_on(async {
            let stream = ChangeStream::builder(sim.client(), sim.stream_arn())
                .start(StartPosition::TrimHorizon)
                .until_caught_up(true)
                .build()
                .unwrap();
            drain_ok(stream).await
        });
        let mut compared = 0;
        for shard in sim.shards() {
            let from_stream: Vec<&Change> = events
                .iter()
                .filter(|e| e.shard_id() == shard.shard_id)
                .map(|e| e.change())
                .collect();
            let batch = lambda_event(&sim, raw_records(&sim, &shard.shard_id));
            let from_lambda: Vec<Change> = lambda::changes(batch).map(Result::unwrap).collect();
            prop_assert_eq!(from_stream.len(), from_lambda.len(), "shard {}", shard.shard_id);
            for (stream, lambda) in from_stream.iter().zip(&from_lambda) {
                assert_same(stream, lambda)?;
                compared += 1;
            }
        }
        prop_assert_eq!(compared, events.len());
    }
}
