//! End to end on a real third-party server: writes through `aws-sdk-dynamodb` to
//! `moto_server`, records read back through this crate's public API.
//!
//! moto has one shard per table that never closes (see `streams-api.md`): lineage is the
//! simulator's business; here the wire format, the SDK and the service's answers are real.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue as D;
use dynamodb_stream::status::PageCounts;
use dynamodb_stream::{
    ChangeEvent, ChangeStream, ChangeStreamBuilder, Decoding, EventKind, StartPosition,
};
use futures::StreamExt;
use serde::Deserialize;
use support::moto::{Moto, to_stream_item};

type DynamoItem = HashMap<String, D>;

/// A consumer of `arn` on `moto`, polling briskly.
fn consumer(moto: &Moto, arn: &str) -> ChangeStreamBuilder {
    ChangeStream::builder(moto.streams(), arn)
        .start(StartPosition::TrimHorizon)
        .poll_interval(Duration::from_millis(50))
        .max_poll_interval(Duration::from_millis(200))
}

/// Every event until the stream is caught up; a bug fails after 10 s instead of hanging.
async fn caught_up(builder: ChangeStreamBuilder) -> Vec<ChangeEvent> {
    let stream = builder
        .until_caught_up(true)
        .build()
        .expect("a valid consumer");
    tokio::time::timeout(Duration::from_secs(10), stream.collect::<Vec<_>>())
        .await
        .expect("the stream did not catch up within 10 s")
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("no stream error")
}

/// Like [`caught_up`], also saying how the pages were decoded.
async fn caught_up_counting(builder: ChangeStreamBuilder) -> (Vec<ChangeEvent>, PageCounts) {
    let mut stream = builder
        .until_caught_up(true)
        .build()
        .expect("a valid consumer");
    let mut events = Vec::new();
    let read = async {
        while let Some(event) = stream.next().await {
            events.push(event.expect("no stream error"));
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the stream did not catch up within 10 s");
    (events, stream.status().pages)
}

/// The next `n` events, within 10 s.
async fn next_n(stream: &mut ChangeStream, n: usize) -> Vec<ChangeEvent> {
    let events = tokio::time::timeout(Duration::from_secs(10), stream.take(n).collect::<Vec<_>>())
        .await
        .expect("the events did not arrive within 10 s");
    events
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("no stream error")
}

fn s(text: &str) -> D {
    D::S(text.to_owned())
}

fn n(number: impl ToString) -> D {
    D::N(number.to_string())
}

fn item<const N: usize>(attributes: [(&str, D); N]) -> DynamoItem {
    attributes
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

async fn put(moto: &Moto, table: &str, item: DynamoItem) {
    moto.dynamodb()
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .expect("PutItem");
}

/// The `pk` of an event, whatever its kind.
fn pk(event: &ChangeEvent) -> String {
    #[derive(Deserialize)]
    struct Key {
        pk: String,
    }
    event.keys::<Key>().expect("a string pk").pk
}

/// The `v` of an event's new image.
fn version(event: &ChangeEvent) -> u64 {
    #[derive(Deserialize)]
    struct V {
        v: u64,
    }
    event
        .new_image::<V>()
        .expect("a numeric v")
        .expect("a new image")
        .v
}

/// Sets come back in any order: compare them sorted.
fn normalized(mut item: dynamodb_stream::Item) -> dynamodb_stream::Item {
    use aws_sdk_dynamodbstreams::types::AttributeValue as S;
    for value in item.values_mut() {
        match value {
            S::Ss(v) | S::Ns(v) => v.sort(),
            S::Bs(v) => v.sort_by(|a, b| a.as_ref().cmp(b.as_ref())),
            S::M(m) => *m = normalized(std::mem::take(m)),
            _ => {}
        }
    }
    item
}

#[derive(Debug, Deserialize, PartialEq)]
struct Doc {
    pk: String,
    sk: u32,
    s: String,
    n: f64,
    b: serde_bytes::ByteBuf,
    flag: Option<bool>,
    nothing: Option<String>,
    m: Inner,
    l: (String, i32, bool),
    ss: Vec<String>,
    ns: Vec<f64>,
    bs: Vec<serde_bytes::ByteBuf>,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Inner {
    inner: String,
    count: u8,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Key {
    pk: String,
    sk: u32,
}

#[tokio::test]
async fn every_attribute_type_arrives_in_insert_modify_and_remove() {
    let moto = Moto::start();
    let arn = moto.create_table("types", true).await;
    let original = item([
        ("pk", s("item-1")),
        ("sk", n(7)),
        ("s", s("héllo, wörld")),
        ("n", n("-12.5")),
        ("b", D::B(Blob::new(vec![0u8, 1, 2, 255]))),
        ("flag", D::Bool(true)),
        ("nothing", D::Null(true)),
        ("m", D::M(item([("inner", s("x")), ("count", n(3))]))),
        ("l", D::L(vec![s("a"), n(1), D::Bool(false)])),
        ("ss", D::Ss(vec!["a".into(), "b".into()])),
        ("ns", D::Ns(vec!["1".into(), "2.5".into()])),
        (
            "bs",
            D::Bs(vec![Blob::new(vec![1u8]), Blob::new(vec![2u8, 3])]),
        ),
    ]);
    put(&moto, "types", original.clone()).await;
    moto.dynamodb()
        .update_item()
        .table_name("types")
        .key("pk", s("item-1"))
        .key("sk", n(7))
        .update_expression("SET s = :s REMOVE flag")
        .expression_attribute_values(":s", s("changed"))
        .send()
        .await
        .expect("UpdateItem");
    let mut modified = original.clone();
    modified.insert("s".into(), s("changed"));
    modified.remove("flag");
    moto.dynamodb()
        .delete_item()
        .table_name("types")
        .key("pk", s("item-1"))
        .key("sk", n(7))
        .send()
        .await
        .expect("DeleteItem");

    let (events, pages) = caught_up_counting(consumer(&moto, &arn)).await;
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind()).collect();
    assert_eq!(
        kinds,
        [EventKind::Insert, EventKind::Modify, EventKind::Remove]
    );
    // The default decoding on moto's pages (the crate parses the empty ones; moto writes
    // creation times as floats, so the SDK decodes those with records) and the SDK's decoding
    // give the same changes.
    let (sdk, sdk_pages) = caught_up_counting(consumer(&moto, &arn).decoding(Decoding::Sdk)).await;
    assert!(
        pages.raw + pages.fallback > 0 && pages.sdk == 0,
        "{pages:?}"
    );
    assert!(sdk_pages.sdk > 0 && sdk_pages.raw + sdk_pages.fallback == 0);
    let changes = |events: &[ChangeEvent]| {
        events
            .iter()
            .map(|e| e.change().clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(changes(&events), changes(&sdk));
    let key = Key {
        pk: "item-1".into(),
        sk: 7,
    };
    let raw = |image: Option<&dynamodb_stream::Item>| image.cloned().map(normalized);
    let written = |item: &DynamoItem| Some(normalized(to_stream_item(item)));
    for event in &events {
        assert_eq!(event.keys::<Key>().expect("typed keys"), key);
        assert_eq!(
            event.raw_keys().len(),
            2,
            "keys hold only the key attributes"
        );
        assert!(!event.is_ttl_delete());
    }
    let (insert, modify, remove) = (&events[0], &events[1], &events[2]);
    assert_eq!(raw(insert.raw_new_image()), written(&original));
    assert_eq!(raw(insert.raw_old_image()), None);
    assert_eq!(raw(modify.raw_old_image()), written(&original));
    assert_eq!(raw(modify.raw_new_image()), written(&modified));
    assert_eq!(raw(remove.raw_old_image()), written(&modified));
    assert_eq!(raw(remove.raw_new_image()), None);

    let doc: Doc = insert
        .new_image()
        .expect("typed decoding")
        .expect("a new image");
    let mut expected = Doc {
        pk: "item-1".into(),
        sk: 7,
        s: "héllo, wörld".into(),
        n: -12.5,
        b: serde_bytes::ByteBuf::from(vec![0u8, 1, 2, 255]),
        flag: Some(true),
        nothing: None,
        m: Inner {
            inner: "x".into(),
            count: 3,
        },
        l: ("a".into(), 1, false),
        ss: vec!["a".into(), "b".into()],
        ns: vec![1.0, 2.5],
        bs: vec![vec![1u8].into(), vec![2u8, 3].into()],
    };
    let sorted = |mut d: Doc| {
        d.ss.sort();
        d.ns.sort_by(f64::total_cmp);
        d.bs.sort();
        d
    };
    assert_eq!(sorted(doc), expected);
    let before: Option<Doc> = remove.old_image().expect("typed decoding");
    expected.s = "changed".into();
    expected.flag = None;
    assert_eq!(before.map(sorted), Some(expected));
    assert_eq!(
        remove.new_image::<Doc>().expect("no image is not an error"),
        None
    );
    // A decode error concerns one event and says so by kind.
    let wrong = insert.keys::<Doc>().expect_err("keys are not a Doc");
    assert_eq!(wrong.kind(), dynamodb_stream::ErrorKind::Decode);
}

#[tokio::test]
async fn trim_horizon_sees_everything_and_latest_only_what_follows_its_start() {
    let moto = Moto::start();
    let arn = moto.create_table("positions", false).await;
    for i in 0..3 {
        put(
            &moto,
            "positions",
            item([("pk", s(&format!("before-{i}"))), ("v", n(i))]),
        )
        .await;
    }
    let mut latest = consumer(&moto, &arn)
        .start(StartPosition::Latest)
        .build()
        .expect("a valid consumer");
    // Let it list the shard and take its LATEST iterator: nothing new exists, so nothing comes.
    // Dropping the pending `next()` is cancel-safe.
    let nothing = tokio::time::timeout(Duration::from_millis(1500), latest.next()).await;
    assert!(
        nothing.is_err(),
        "LATEST delivered an old record: {nothing:?}"
    );
    for i in 0..2 {
        put(
            &moto,
            "positions",
            item([("pk", s(&format!("after-{i}"))), ("v", n(i))]),
        )
        .await;
    }

    let seen: Vec<String> = next_n(&mut latest, 2).await.iter().map(pk).collect();
    assert_eq!(seen, ["after-0", "after-1"]);
    let more = tokio::time::timeout(Duration::from_millis(500), latest.next()).await;
    assert!(
        more.is_err(),
        "LATEST delivered more than was written: {more:?}"
    );

    let all: Vec<String> = caught_up(consumer(&moto, &arn))
        .await
        .iter()
        .map(pk)
        .collect();
    assert_eq!(
        all,
        ["before-0", "before-1", "before-2", "after-0", "after-1"]
    );
}

#[tokio::test]
async fn resuming_from_a_checkpoint_yields_exactly_the_rest() {
    let moto = Moto::start();
    let arn = moto.create_table("resume", false).await;
    for i in 0..10 {
        put(
            &moto,
            "resume",
            item([("pk", s(&format!("k{i}"))), ("v", n(i))]),
        )
        .await;
    }
    let mut first = consumer(&moto, &arn).build().expect("a valid consumer");
    let head = next_n(&mut first, 4).await;
    drop(first);
    let saved = head[3].checkpoint().to_string();

    let checkpoint: dynamodb_stream::Checkpoint = saved.parse().expect("the text form parses");
    let rest = caught_up(consumer(&moto, &arn).resume_from(checkpoint)).await;
    let keys: Vec<String> = head.iter().chain(&rest).map(pk).collect();
    let expected: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    assert_eq!(
        keys, expected,
        "no event lost or repeated across the restart"
    );

    // Resuming from the stream's own position after its last event yields nothing, and a
    // write made afterwards is the only thing the next resume sees.
    let mut reader = consumer(&moto, &arn)
        .until_caught_up(true)
        .build()
        .expect("valid");
    while let Some(event) = reader.next().await {
        event.expect("no stream error");
    }
    let end = reader.checkpoint();
    assert!(
        caught_up(consumer(&moto, &arn).resume_from(end.clone()))
            .await
            .is_empty()
    );
    put(&moto, "resume", item([("pk", s("late")), ("v", n(0))])).await;
    let late: Vec<String> = caught_up(consumer(&moto, &arn).resume_from(end))
        .await
        .iter()
        .map(pk)
        .collect();
    assert_eq!(late, ["late"]);
}

#[tokio::test]
async fn writes_during_consumption_all_arrive_in_per_key_order() {
    const KEYS: u64 = 5;
    const VERSIONS: u64 = 20;
    let moto = Moto::start();
    let arn = moto.create_table("live", false).await;
    let mut stream = consumer(&moto, &arn).build().expect("a valid consumer");

    let client = moto.dynamodb();
    let writer = tokio::spawn(async move {
        for v in 0..VERSIONS {
            for k in 0..KEYS {
                client
                    .put_item()
                    .table_name("live")
                    .set_item(Some(item([("pk", s(&format!("k{k}"))), ("v", n(v))])))
                    .send()
                    .await
                    .expect("PutItem");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for k in 0..KEYS {
            client
                .delete_item()
                .table_name("live")
                .key("pk", s(&format!("k{k}")))
                .send()
                .await
                .expect("DeleteItem");
        }
    });

    let total = usize::try_from(KEYS * (VERSIONS + 1)).expect("small");
    let events = next_n(&mut stream, total).await;
    writer.await.expect("the writer finished");
    let mut per_key: HashMap<String, Vec<ChangeEvent>> = HashMap::new();
    for event in events {
        per_key.entry(pk(&event)).or_default().push(event);
    }
    assert_eq!(per_key.len(), usize::try_from(KEYS).expect("small"));
    for (key, events) in &per_key {
        let (removes, writes) = events.split_last().expect("events for every key");
        assert_eq!(
            removes.kind(),
            EventKind::Remove,
            "{key}: the delete comes last"
        );
        let versions: Vec<u64> = writes.iter().map(version).collect();
        assert_eq!(versions, (0..VERSIONS).collect::<Vec<_>>(), "{key}");
        assert_eq!(writes[0].kind(), EventKind::Insert, "{key}");
        assert!(
            writes[1..].iter().all(|e| e.kind() == EventKind::Modify),
            "{key}"
        );
    }
    let sequence_numbers: Vec<_> = per_key
        .values()
        .flatten()
        .map(|e| e.sequence_number().clone())
        .collect();
    let unique: std::collections::HashSet<_> = sequence_numbers.iter().collect();
    assert_eq!(
        unique.len(),
        sequence_numbers.len(),
        "no event delivered twice"
    );
    let more = tokio::time::timeout(Duration::from_millis(500), stream.next()).await;
    assert!(more.is_err(), "nothing beyond what was written: {more:?}");
}
