//! Lambda DynamoDB events, in the shape AWS documents, converted into `Change`s: every field,
//! every attribute type, and malformed records.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use aws_sdk_dynamodbstreams::primitives::Blob;
use aws_sdk_dynamodbstreams::types::{AttributeValue as A, StreamViewType};
use dynamodb_stream::lambda::{Event, EventRecord, changes};
use dynamodb_stream::{Change, ErrorKind, EventKind, Item};
use serde_json::{Value, json};

const ARN: &str =
    "arn:aws:dynamodb:us-east-1:123456789012:table/Orders/stream/2026-11-21T19:00:00.000";

/// The fixture, as JSON to edit.
fn fixture_json() -> Value {
    serde_json::from_str(include_str!("data/lambda_event.json")).unwrap()
}

fn parse(json: Value) -> Event {
    serde_json::from_value(json).unwrap()
}

fn all_ok(event: Event) -> Vec<Change> {
    changes(event).map(|c| c.expect("a valid record")).collect()
}

fn s(v: &str) -> A {
    A::S(v.to_owned())
}

fn n(v: &str) -> A {
    A::N(v.to_owned())
}

fn item<const N: usize>(pairs: [(&str, A); N]) -> Item {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn key(pk: &str) -> Item {
    item([("pk", s(pk)), ("sk", n("1"))])
}

fn assert_common(change: &Change, event_id: &str, seq: &str, created: u64, size: i64) {
    assert_eq!(change.event_id(), event_id);
    assert_eq!(change.sequence_number().as_str(), seq);
    assert_eq!(change.stream_arn(), ARN);
    assert_eq!(
        change.shard_id(),
        None,
        "a Lambda record does not name its shard"
    );
    assert_eq!(change.aws_region(), Some("us-east-1"));
    assert_eq!(
        change.approximate_creation_time(),
        Some(UNIX_EPOCH + Duration::from_secs(created))
    );
    assert_eq!(change.size_bytes(), Some(size));
    assert_eq!(change.view_type(), Some(&StreamViewType::NewAndOldImages));
}

#[test]
fn an_insert_keeps_every_attribute_type_exactly() {
    let changes = all_ok(parse(fixture_json()));
    assert_eq!(changes.len(), 4);
    let insert = &changes[0];
    assert_common(
        insert,
        "c4ca4238a0b923820dcc509a6f75849b",
        "111100000000000000000000001",
        1_795_461_826,
        312,
    );
    assert_eq!(insert.kind(), EventKind::Insert);
    assert_eq!(insert.raw_keys(), &key("order#1"));
    assert_eq!(insert.raw_old_image(), None);
    assert_eq!(insert.user_identity(), None);
    assert!(!insert.is_ttl_delete());
    let expected = item([
        ("pk", s("order#1")),
        ("sk", n("1")),
        ("customer", s("grace")),
        ("total", n("21.01")),
        // Not an f64: the digits are kept as the service sent them.
        ("exact", n("12345678901234567890.123456789")),
        ("photo", A::B(Blob::new(b"hello".to_vec()))),
        (
            "chunks",
            A::Bs(vec![Blob::new(vec![0, 1]), Blob::new(vec![255])]),
        ),
        ("tags", A::Ss(vec!["gift".into(), "new".into()])),
        ("sizes", A::Ns(vec!["42".into(), "-7.5".into()])),
        ("paid", A::Bool(true)),
        ("coupon", A::Null(true)),
        (
            "address",
            A::M(item([
                ("city", s("Paris")),
                ("lines", A::L(vec![s("1 rue X"), n("75001")])),
            ])),
        ),
        (
            "items",
            A::L(vec![
                A::M(item([("sku", s("book")), ("qty", n("1"))])),
                A::L(vec![A::Bool(false), A::Null(true)]),
            ]),
        ),
    ]);
    assert_eq!(insert.raw_new_image(), Some(&expected));
}

#[derive(Debug, PartialEq, serde::Deserialize)]
struct Address {
    city: String,
}

#[derive(Debug, PartialEq, serde::Deserialize)]
struct Order {
    pk: String,
    sk: u32,
    customer: String,
    total: f64,
    tags: Vec<String>,
    paid: bool,
    coupon: Option<String>,
    photo: serde_bytes::ByteBuf,
    address: Address,
}

#[derive(Debug, PartialEq, serde::Deserialize)]
struct Key {
    pk: String,
    sk: u32,
}

#[test]
fn images_and_keys_decode_into_your_types() {
    let changes = all_ok(parse(fixture_json()));
    let order: Order = changes[0]
        .new_image()
        .unwrap()
        .expect("an insert has a new image");
    assert_eq!(order.pk, "order#1");
    assert_eq!((order.sk, order.total, order.paid), (1, 21.01, true));
    assert_eq!((order.customer.as_str(), order.coupon), ("grace", None));
    assert_eq!(order.tags, ["gift", "new"]);
    assert_eq!(order.photo.as_ref(), b"hello");
    assert_eq!(order.address.city, "Paris");
    let key: Key = changes[3].keys().unwrap();
    assert_eq!(
        key,
        Key {
            pk: "order#4".into(),
            sk: 1
        }
    );
    // A shape that does not fit is a decode error of that change.
    let wrong = changes[1].new_image::<Order>().unwrap_err();
    assert_eq!(wrong.kind(), ErrorKind::Decode);
}

#[test]
fn a_modify_has_both_images_and_a_remove_the_old_one() {
    let changes = all_ok(parse(fixture_json()));
    let (modify, remove) = (&changes[1], &changes[2]);
    assert_common(
        modify,
        "c81e728d9d4c2f636f067f89cc14862c",
        "111100000000000000000000002",
        1_795_461_827,
        64,
    );
    assert_eq!(modify.kind(), EventKind::Modify);
    assert_eq!(modify.raw_keys(), &key("order#2"));
    let status = |v: &str| item([("pk", s("order#2")), ("sk", n("1")), ("status", s(v))]);
    assert_eq!(modify.raw_new_image(), Some(&status("SHIPPED")));
    assert_eq!(modify.raw_old_image(), Some(&status("PLACED")));
    assert!(!modify.is_ttl_delete());

    assert_common(
        remove,
        "eccbc87e4b5ce2fe28308fd9f2a7baf3",
        "111100000000000000000000003",
        1_795_461_828,
        40,
    );
    assert_eq!(remove.kind(), EventKind::Remove);
    assert_eq!(remove.raw_new_image(), None);
    let old = item([
        ("pk", s("order#3")),
        ("sk", n("1")),
        ("status", s("CANCELLED")),
    ]);
    assert_eq!(remove.raw_old_image(), Some(&old));
    assert_eq!(remove.user_identity(), None);
    assert!(!remove.is_ttl_delete(), "a user's delete");
}

#[test]
fn a_ttl_delete_is_flagged_by_its_service_identity() {
    let changes = all_ok(parse(fixture_json()));
    let ttl = &changes[3];
    assert_common(
        ttl,
        "a87ff679a2f3e71d9181a67b7542122c",
        "111100000000000000000000004",
        1_795_461_829,
        44,
    );
    assert_eq!(ttl.kind(), EventKind::Remove);
    assert!(ttl.is_ttl_delete());
    let identity = ttl
        .user_identity()
        .expect("a TTL delete names its identity");
    assert_eq!(identity.r#type(), Some("Service"));
    assert_eq!(identity.principal_id(), Some("dynamodb.amazonaws.com"));
    let old = item([
        ("pk", s("order#4")),
        ("sk", n("1")),
        ("expires_at", n("1795461800")),
    ]);
    assert_eq!(ttl.raw_old_image(), Some(&old));

    // The same identity on an insert is no TTL delete; another principal on a remove neither.
    let mut json = fixture_json();
    json["Records"][0]["userIdentity"] =
        json!({"type": "Service", "principalId": "dynamodb.amazonaws.com"});
    json["Records"][3]["userIdentity"]["principalId"] = json!("someone.example.com");
    let changes = all_ok(parse(json));
    assert!(!changes[0].is_ttl_delete());
    assert!(!changes[3].is_ttl_delete());
}

/// The fixture with record 1 changed by `edit`, converted.
fn with_middle_record(edit: impl FnOnce(&mut Value)) -> Vec<dynamodb_stream::Result<Change>> {
    let mut json = fixture_json();
    edit(&mut json["Records"][1]);
    changes(parse(json)).collect()
}

/// A change to one record's JSON.
type Edit = Box<dyn FnOnce(&mut Value)>;

#[test]
fn a_malformed_record_is_one_error_and_the_rest_of_the_batch_converts() {
    let cases: [(&str, Edit); 6] = [
        (
            "unknown event name",
            Box::new(|r| r["eventName"] = json!("UPSERT")),
        ),
        (
            "no sequence number",
            Box::new(|r| {
                r["dynamodb"]
                    .as_object_mut()
                    .unwrap()
                    .remove("SequenceNumber");
            }),
        ),
        (
            "invalid sequence number",
            Box::new(|r| r["dynamodb"]["SequenceNumber"] = json!("12ab")),
        ),
        (
            "no eventSourceARN",
            Box::new(|r| {
                r.as_object_mut().unwrap().remove("eventSourceARN");
            }),
        ),
        (
            "empty eventSourceARN",
            Box::new(|r| r["eventSourceARN"] = json!("")),
        ),
        (
            "another event source",
            Box::new(|r| r["eventSource"] = json!("aws:kinesis")),
        ),
    ];
    for (case, edit) in cases {
        let results = with_middle_record(edit);
        assert_eq!(results.len(), 4, "{case}");
        let error = results[1].as_ref().expect_err(case);
        assert_eq!(error.kind(), ErrorKind::MalformedRecord, "{case}");
        assert_eq!(error.shard_id(), None, "{case}");
        let seqs: Vec<&str> = [0, 2, 3]
            .iter()
            .map(|&i| results[i].as_ref().expect(case).sequence_number().as_str())
            .collect();
        assert_eq!(
            seqs,
            [
                "111100000000000000000000001",
                "111100000000000000000000003",
                "111100000000000000000000004"
            ],
            "{case}"
        );
    }
}

#[test]
fn what_aws_lambda_events_fills_in_by_default_is_absent_again() {
    let results = with_middle_record(|r| {
        let dynamodb = r["dynamodb"].as_object_mut().unwrap();
        for field in [
            "NewImage",
            "OldImage",
            "ApproximateCreationDateTime",
            "StreamViewType",
        ] {
            dynamodb.remove(field);
        }
        r.as_object_mut().unwrap().remove("eventSource");
    });
    let change = results[1].as_ref().unwrap();
    assert_eq!(change.raw_new_image(), None);
    assert_eq!(change.raw_old_image(), None);
    assert_eq!(change.approximate_creation_time(), None);
    assert_eq!(change.view_type(), None);
    assert_eq!(change.raw_keys(), &key("order#2"));
    // `null` images too (some producers write them).
    let results = with_middle_record(|r| r["dynamodb"]["NewImage"] = Value::Null);
    assert_eq!(results[1].as_ref().unwrap().raw_new_image(), None);
}

#[test]
fn one_record_converts_alone_as_in_a_batch() {
    let json = fixture_json();
    let batch = all_ok(parse(json.clone()));
    for (i, expected) in batch.iter().enumerate() {
        let record: EventRecord = serde_json::from_value(json["Records"][i].clone()).unwrap();
        assert_eq!(&Change::try_from(record).unwrap(), expected);
    }
    let empty = parse(json!({"Records": []}));
    assert_eq!(changes(empty).len(), 0);
}

#[test]
fn event_names_are_exact_and_every_view_type_maps() {
    // An event name outside the three is a malformed record, whatever its case.
    let results = with_middle_record(|r| r["eventName"] = json!("insert"));
    assert_eq!(
        results[1].as_ref().unwrap_err().kind(),
        ErrorKind::MalformedRecord
    );
    // Every view type maps to the SDK's.
    let views = HashMap::from([
        ("KEYS_ONLY", StreamViewType::KeysOnly),
        ("NEW_IMAGE", StreamViewType::NewImage),
        ("OLD_IMAGE", StreamViewType::OldImage),
        ("NEW_AND_OLD_IMAGES", StreamViewType::NewAndOldImages),
    ]);
    for (text, view) in views {
        let results = with_middle_record(|r| r["dynamodb"]["StreamViewType"] = json!(text));
        assert_eq!(results[1].as_ref().unwrap().view_type(), Some(&view));
    }
}
