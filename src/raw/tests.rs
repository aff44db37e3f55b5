//! The page parse on hand-written bodies, each checked against the SDK's own deserializer on
//! the same bytes: what the parse accepts must give the SDK path's changes exactly; what it
//! declines goes to the SDK (never a panic, never a different answer).

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_dynamodbstreams::operation::get_records::{GetRecords, GetRecordsOutput};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::runtime_plugin::RuntimePlugin;
use aws_smithy_runtime_api::client::ser_de::{DeserializeResponse, SharedResponseDeserializer};
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::error::{Error, ErrorKind};
use crate::event::{Change, Origin};

const ARN: &str = "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/2026-11-21T00:00:00.000";

fn origin() -> Arc<Origin> {
    Origin::new(ARN.into(), Some("shard-1".into()))
}

/// The SDK's `GetRecords` deserializer on `body` (a 200 response).
fn sdk(body: &str) -> Option<GetRecordsOutput> {
    let layer = GetRecords::new().config().unwrap();
    let de = layer.load::<SharedResponseDeserializer>().unwrap();
    let response = HttpResponse::new(
        StatusCode::try_from(200).unwrap(),
        SdkBody::from(body.to_owned()),
    );
    let out = de
        .deserialize_nonstreaming_with_config(&response, &ConfigBag::base())
        .ok()?;
    Some(out.downcast::<GetRecordsOutput>().unwrap())
}

type Outcome = (Vec<Change>, Option<(ErrorKind, String)>, Option<String>);

fn error(e: Option<Error>) -> Option<(ErrorKind, String)> {
    e.map(|e| (e.kind(), e.to_string()))
}

fn via_sdk(body: &str) -> Option<Outcome> {
    let out = sdk(body)?;
    let next = out.next_shard_iterator.clone();
    let (changes, bad) = Change::from_records(&origin(), out.records.unwrap_or_default());
    Some((changes, error(bad), next))
}

fn via_raw(body: &str) -> Result<Outcome, Declined> {
    let mut page = RawPage::parse(Bytes::from(body.to_owned()))?;
    let next = page.take_next();
    let (changes, bad) = Change::from_page(&origin(), page);
    Ok((changes, error(bad), next))
}

/// The parse accepts `body`, and reads it as the SDK does.
fn accepted(body: &str) -> Outcome {
    let raw = via_raw(body).unwrap_or_else(|why| panic!("declined: {why}\n{body}"));
    let sdk = via_sdk(body).expect("the SDK reads it");
    assert_eq!(raw, sdk, "{body}");
    raw
}

/// The parse declines `body` (and the SDK decides).
fn declined(body: &str) {
    assert!(via_raw(body).is_err(), "accepted: {body}");
}

/// Any typed value, bytes included.
#[derive(serde::Deserialize, Debug, PartialEq)]
#[serde(untagged)]
enum Any {
    Bytes(serde_bytes::ByteBuf),
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Any>),
    Map(BTreeMap<String, Any>),
    Null(()),
}

fn record(seq: &str, name: &str, stream_extra: &str) -> String {
    format!(
        r#"{{"awsRegion":"eu-west-1","dynamodb":{{"ApproximateCreationDateTime":1763000000,"Keys":{{"pk":{{"S":"k{seq}"}}}},"NewImage":{{"pk":{{"S":"k{seq}"}},"v":{{"N":"{seq}"}}}},"SequenceNumber":"{seq}","SizeBytes":20,"StreamViewType":"NEW_AND_OLD_IMAGES"{stream_extra}}},"eventID":"id-{seq}","eventName":"{name}","eventSource":"aws:dynamodb","eventVersion":"1.1"}}"#
    )
}

fn page(records: &[String], next: Option<&str>) -> String {
    let next = next.map_or(String::new(), |n| format!(r#","NextShardIterator":"{n}""#));
    format!(r#"{{"Records":[{}]{next}}}"#, records.join(","))
}

#[test]
fn a_page_reads_as_the_sdk_reads_it() {
    let body = page(
        &[
            record("100000000000000000001", "INSERT", ""),
            record("100000000000000000002", "MODIFY", ""),
        ],
        Some("it-2"),
    );
    let (changes, bad, next) = accepted(&body);
    assert_eq!(
        (changes.len(), bad, next.as_deref()),
        (2, None, Some("it-2"))
    );
    let change = &changes[1];
    assert_eq!(change.event_id(), "id-100000000000000000002");
    assert_eq!(change.aws_region(), Some("eu-west-1"));
    assert_eq!(change.created_secs(), Some(1_763_000_000));
    assert_eq!(change.size_bytes(), Some(20));
    #[derive(serde::Deserialize, PartialEq, Debug)]
    struct Row {
        pk: String,
        v: f64,
    }
    let row: Row = change.new_image().unwrap().unwrap();
    assert_eq!((row.pk.as_str(), row.v), ("k100000000000000000002", 1e20));
}

#[test]
fn shard_end_empty_pages_and_nulls_read_as_the_sdk_reads_them() {
    assert_eq!(accepted(&page(&[], None)).2, None);
    assert_eq!(accepted(&page(&[], Some("x"))).2.as_deref(), Some("x"));
    accepted("{}");
    accepted(r#"{"Records":null,"NextShardIterator":null,"Other":[1,{"a":2.5e3}]}"#);
    let nulls = r#"{"Records":[{"eventID":null,"eventName":"REMOVE","awsRegion":null,"userIdentity":null,
        "dynamodb":{"Keys":null,"NewImage":null,"OldImage":{},"SequenceNumber":"7","SizeBytes":null,
        "ApproximateCreationDateTime":null,"StreamViewType":null}}]}"#;
    let (changes, ..) = accepted(nulls);
    assert!(changes[0].raw_keys().is_empty());
    assert!(changes[0].raw_new_image().is_none());
    assert_eq!(changes[0].raw_old_image().map(|i| i.len()), Some(0));
}

#[test]
fn escapes_unicode_every_type_and_identity_read_as_the_sdk_reads_them() {
    let image = r#"{"na\u006de \"q\"":{"S":"a\"b\\\n\u00e9\ud83d\ude00 \u2028"},"é":{"N":"-1.5E-130"},
        "big":{"N":"123456789012345678901234567890123456789"},"b":{"B":"aGk="},"e":{"B":""},
        "t":{"BOOL":true},"z":{"NULL":true},"ss":{"SS":["x","\u0000"]},
        "ns":{"NS":["1","2.50"]},"bs":{"BS":["AA==","/w=="]},"l":{"L":[{"S":"a"},{"L":[]},{"M":{}}]},
        "m":{"M":{"in":{"M":{"deep":{"SS":[]}}}}}}"#;
    let body = format!(
        r#"{{ "NextShardIterator" : "n\/1", "Records" : [ {{ "eventName" : "REMOVE",
        "userIdentity" : {{ "Type" : "Service", "PrincipalId" : "dynamodb.amazonaws.com", "x": 1 }},
        "eventID" : "\u0041", "dynamodb" : {{ "SequenceNumber" : "000000000000000000000000000000000000009",
        "OldImage" : {image}, "Keys" : {{"pk":{{"S":"k"}}}}, "StreamViewType" : "SOMETHING_NEW",
        "ApproximateCreationDateTime" : -5 }} }} ] }}"#
    );
    let (changes, ..) = accepted(&body);
    let change = &changes[0];
    assert!(change.is_ttl_delete());
    assert_eq!(change.event_id(), "A");
    assert_eq!(change.raw_old_image().map(|i| i.len()), Some(12));
    let typed: BTreeMap<String, Any> = change.old_image().unwrap().unwrap();
    let sdk = via_sdk(&body).unwrap().0;
    let from_sdk: BTreeMap<String, Any> = sdk[0].old_image().unwrap().unwrap();
    assert_eq!(typed, from_sdk);
    assert_eq!(
        typed["b"],
        Any::Bytes(serde_bytes::ByteBuf::from(b"hi".to_vec()))
    );
}

#[test]
fn images_last_in_their_section_or_spaced_out_read_as_the_sdk_reads_them() {
    let body = r#"{"Records":[{"eventName":"MODIFY","dynamodb":{"SequenceNumber":"5",
        "Keys"  :  {"pk":{"S":"a"}}  ,
        "OldImage":{"pk":{"S":"a"},"l":{"L":[{"M":{"x":{"BOOL":false}}},{"SS":["]}"]}]}},
        "NewImage"	:	{ "pk" : { "S" : "a\"}" } , "e" : { "M" : { } } }
        }}, {"eventName":"INSERT","dynamodb":{"NewImage":{"k":{"NULL":true}},"SequenceNumber":"6","Keys":{}}}]}"#;
    let (changes, ..) = accepted(body);
    assert_eq!(changes[0].raw_new_image().map(|i| i.len()), Some(2));
    assert_eq!(changes[0].raw_old_image().map(|i| i.len()), Some(2));
    assert!(changes[1].raw_keys().is_empty());
}

#[test]
fn malformed_records_end_the_page_after_the_good_ones_as_on_the_sdk_path() {
    let good = |n: u32| record(&format!("10000000000000000000{n}"), "INSERT", "");
    let cases = [
        record("", "INSERT", "").replace(r#""SequenceNumber":"","#, ""),
        record("12a", "INSERT", ""),
        record("100000000000000000009", "UPSERT", ""),
        record("100000000000000000009", "INSERT", "").replace(r#","eventName":"INSERT""#, ""),
        r#"{"eventID":"no-section","eventName":"INSERT"}"#.to_owned(),
    ];
    for bad in cases {
        let body = page(&[good(1), good(2), bad, good(3)], Some("n"));
        let (changes, error, _) = accepted(&body);
        assert_eq!(changes.len(), 2, "{body}");
        assert_eq!(error.map(|e| e.0), Some(ErrorKind::MalformedRecord));
    }
}

#[test]
fn forms_the_sdk_reads_differently_are_declined() {
    let float_time = record("1", "INSERT", "").replace("1763000000", "1.4794E9");
    let bodies = [
        float_time,
        record("1", "INSERT", "").replace(r#""SizeBytes":20"#, r#""SizeBytes":20.0"#),
        record("1", "INSERT", r#","SequenceNumber":"2""#),
        record("1", "INSERT", "").replace(r#"{"S":"k1"}}"#, r#"{"S":"k1","__type":"x"}}"#),
        record("1", "INSERT", "").replace(r#"{"S":"k1"}}"#, r#"{"S":"k1","N":null}}"#),
        record("1", "INSERT", "").replace(r#"{"S":"k1"}}"#, r#"{"S":null}}"#),
        record("1", "INSERT", "").replace(r#"{"S":"k1"}}"#, r#"{"X":"k1"}}"#),
        record("1", "INSERT", "").replace(r#"{"S":"k1"}}"#, r#"{}}"#),
        record("1", "INSERT", "").replace(r#"{"S":"k1"}}"#, r#"{"B":"aGk"}}"#),
        record("1", "INSERT", "").replace(r#"{"S":"k1"}}"#, r#"{"B":"aGl="}}"#),
        record("1", "INSERT", "").replace(r#"{"S":"k1"}}"#, r#"{"SS":["a",null]}}"#),
        record("1", "INSERT", "").replace(r#"{"S":"k1"}}"#, r#"{"S":"\ud800"}}"#),
        record("1", "INSERT", "").replace(r#""eventID":"id-1""#, r#""eventID":5"#),
    ];
    for record in bodies {
        declined(&page(&[record], None));
    }
    let deep = format!(
        r#"{}{{"S":"x"}}{}"#,
        r#"{"L":["#.repeat(33),
        "]}".repeat(33)
    );
    let ok = format!(
        r#"{}{{"S":"x"}}{}"#,
        r#"{"L":["#.repeat(32),
        "]}".repeat(32)
    );
    let with = |v: &str| {
        page(
            &[record("1", "INSERT", "").replace(r#"{"S":"k1"}}"#, &format!("{v}}}"))],
            None,
        )
    };
    declined(&with(&deep));
    accepted(&with(&ok));
    for body in [
        "",
        "[]",
        "{",
        r#"{"Records":{}}"#,
        r#"{"Records":[null]}"#,
        "{} x",
        r#"{"Records":[],"Records":[]}"#,
    ] {
        declined(body);
    }
    assert!(RawPage::parse(Bytes::from_static(b"{\"NextShardIterator\":\"\xff\"}")).is_err());
}

fn body_strategy() -> impl Strategy<Value = String> {
    let records = prop::collection::vec(
        (
            1u64..1_000_000,
            prop::sample::select(vec!["INSERT", "MODIFY", "REMOVE", "X"]),
        ),
        0..4,
    );
    (records, proptest::option::of("[a-z|]{1,8}")).prop_map(|(records, next)| {
        let records: Vec<String> = records
            .iter()
            .map(|(n, name)| record(&format!("{n:021}"), name, ""))
            .collect();
        page(&records, next.as_deref())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any damage to a page is declined, or read exactly as the SDK reads it; never a panic.
    #[test]
    fn damaged_pages_are_declined_or_read_as_the_sdk_reads_them(
        body in body_strategy(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..4, any::<u8>()), 1..4),
    ) {
        let mut bytes = body.into_bytes();
        for (at, how, byte) in edits {
            if bytes.is_empty() { break; }
            let i = at.index(bytes.len());
            match how {
                0 => bytes[i] = byte,
                1 => { bytes.remove(i); }
                2 => bytes.insert(i, byte),
                _ => bytes.truncate(i),
            }
        }
        let Ok(mut page) = RawPage::parse(Bytes::from(bytes.clone())) else { return Ok(()) };
        let text = String::from_utf8(bytes).expect("an accepted page is UTF-8");
        let next = page.take_next();
        let (changes, bad) = Change::from_page(&origin(), page);
        let sdk = via_sdk(&text);
        prop_assert!(sdk.is_some(), "the SDK refuses a page the parse took: {}", text);
        prop_assert_eq!(Some((changes, error(bad), next)), sdk);
    }
}
