//! The DynamoDB store against moto: round trips, ownership and conflicts between racing
//! stores, deliberate take-overs, bad items, and a conflict surfacing through a committer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue as Av;
use dynamodb_stream::sim::{AttributeValue, Simulator};
use dynamodb_stream::store::DynamoDbStore;
use dynamodb_stream::{
    ChangeStream, Checkpoint, CheckpointStore, Committer, ErrorKind, StartPosition,
};
use futures::StreamExt;
use support::moto::Moto;

const TABLE: &str = "checkpoints";

fn arn(n: u32) -> String {
    format!("arn:aws:dynamodb:us-east-1:000000000000:table/t{n}/stream/2026-11-21T00:00:00.000")
}

fn checkpoint(arn: &str, n: u64) -> Checkpoint {
    let body = format!("ddbs1;{arn};shardId-1=s{n:021};shardId-0=f");
    let crc = crc32fast::hash(body.as_bytes());
    format!("{body};c{crc:08x}").parse().unwrap()
}

async fn setup() -> (Moto, aws_sdk_dynamodb::Client) {
    let moto = Moto::start();
    let client = moto.dynamodb();
    DynamoDbStore::new(client.clone(), TABLE)
        .create_table()
        .await
        .unwrap();
    (moto, client)
}

async fn raw_item(client: &aws_sdk_dynamodb::Client, arn: &str) -> HashMap<String, Av> {
    client
        .get_item()
        .table_name(TABLE)
        .key("stream_arn", Av::S(arn.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item()
        .cloned()
        .unwrap_or_default()
}

fn attr<'a>(item: &'a HashMap<String, Av>, name: &str) -> &'a str {
    match item.get(name) {
        Some(Av::S(s) | Av::N(s)) => s,
        other => panic!("{name}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saves_and_loads_one_item_per_stream() {
    let (_moto, client) = setup().await;
    let store = DynamoDbStore::new(client.clone(), TABLE);
    assert_eq!(store.table_name(), TABLE);
    // Creating it again is fine.
    store.create_table().await.unwrap();

    let (a, b) = (arn(1), arn(2));
    assert_eq!(store.load(&a).await.unwrap(), None);
    store.save(&checkpoint(&a, 1)).await.unwrap();
    store.save(&checkpoint(&a, 2)).await.unwrap();
    store.save(&checkpoint(&b, 9)).await.unwrap();
    assert_eq!(store.load(&a).await.unwrap(), Some(checkpoint(&a, 2)));
    assert_eq!(store.load(&b).await.unwrap(), Some(checkpoint(&b, 9)));
    store.save(&checkpoint(&a, 3)).await.unwrap();

    let item = raw_item(&client, &a).await;
    assert_eq!(attr(&item, "checkpoint"), checkpoint(&a, 3).to_string());
    assert_eq!(attr(&item, "owner"), store.owner());
    assert_eq!(attr(&item, "version"), "3");
    assert!(attr(&item, "updated_at").parse::<u64>().unwrap() > 1_700_000_000);

    // Another store (a restarted process) reads it.
    let other = DynamoDbStore::new(client.clone(), TABLE);
    assert_ne!(other.owner(), store.owner(), "owner ids are unique");
    assert_eq!(other.load(&a).await.unwrap(), Some(checkpoint(&a, 3)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_racing_for_a_new_stream_one_wins_the_other_conflicts() {
    let (_moto, client) = setup().await;
    // The race's interleaving, step by step: both see no item, then both save. (Not two
    // truly simultaneous requests: moto serves them on threads without making a conditional
    // write atomic, as DynamoDB does, so the outcome there would test moto.)
    let a = arn(1);
    let first = DynamoDbStore::new(client.clone(), TABLE);
    let second = DynamoDbStore::new(client.clone(), TABLE);
    assert_eq!(first.load(&a).await.unwrap(), None);
    assert_eq!(second.load(&a).await.unwrap(), None);
    first.save(&checkpoint(&a, 10)).await.unwrap();
    let err = second.save(&checkpoint(&a, 20)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    let err = second.save(&checkpoint(&a, 21)).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Conflict,
        "a conflict is not forgotten"
    );
    assert_eq!(
        attr(&raw_item(&client, &a).await, "checkpoint"),
        checkpoint(&a, 10).to_string(),
        "the first store's checkpoint is intact"
    );
    first.save(&checkpoint(&a, 11)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_consumer_cannot_save_over_the_owner_until_it_claims() {
    let (_moto, client) = setup().await;
    let a = arn(1);
    let owner = DynamoDbStore::new(client.clone(), TABLE);
    owner.save(&checkpoint(&a, 1)).await.unwrap();

    let intruder = DynamoDbStore::new(client.clone(), TABLE);
    assert_eq!(intruder.load(&a).await.unwrap(), Some(checkpoint(&a, 1)));
    let err = intruder.save(&checkpoint(&a, 2)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(intruder.load(&a).await.unwrap(), Some(checkpoint(&a, 1)));
    owner.save(&checkpoint(&a, 3)).await.unwrap();

    // A deliberate take-over: the new owner resumes from the old one's position...
    let successor = DynamoDbStore::new(client.clone(), TABLE);
    assert_eq!(successor.claim(&a).await.unwrap(), Some(checkpoint(&a, 3)));
    successor.save(&checkpoint(&a, 4)).await.unwrap();
    // ...and the old owner is refused from then on.
    let err = owner.save(&checkpoint(&a, 5)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    successor.save(&checkpoint(&a, 6)).await.unwrap();
    let item = raw_item(&client, &a).await;
    assert_eq!(attr(&item, "checkpoint"), checkpoint(&a, 6).to_string());
    assert_eq!(attr(&item, "owner"), successor.owner());

    // Claiming a stream nobody saved yet: nothing to resume from, and it is ours.
    let b = arn(2);
    let claimer = DynamoDbStore::new(client.clone(), TABLE);
    assert_eq!(claimer.claim(&b).await.unwrap(), None);
    let late = DynamoDbStore::new(client.clone(), TABLE);
    assert_eq!(late.load(&b).await.unwrap(), None);
    let err = late.save(&checkpoint(&b, 1)).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Conflict,
        "the claim counts as ownership"
    );
    claimer.save(&checkpoint(&b, 2)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stable_owner_id_resumes_without_a_claim_but_stale_copies_conflict() {
    let (_moto, client) = setup().await;
    let a = arn(1);
    let before = DynamoDbStore::new(client.clone(), TABLE).with_owner("worker-1");
    assert_eq!(before.owner(), "worker-1");
    before.save(&checkpoint(&a, 1)).await.unwrap();
    drop(before);

    // Restarted with the same id: load, then save.
    let after = DynamoDbStore::new(client.clone(), TABLE).with_owner("worker-1");
    assert_eq!(after.load(&a).await.unwrap(), Some(checkpoint(&a, 1)));
    // A duplicate with the same id loaded the same version...
    let twin = DynamoDbStore::new(client.clone(), TABLE).with_owner("worker-1");
    assert_eq!(twin.load(&a).await.unwrap(), Some(checkpoint(&a, 1)));
    after.save(&checkpoint(&a, 2)).await.unwrap();
    // ...and is refused by the version check.
    let err = twin.save(&checkpoint(&a, 3)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(after.load(&a).await.unwrap(), Some(checkpoint(&a, 2)));

    // Saving without loading first never overwrites an existing item.
    let blind = DynamoDbStore::new(client.clone(), TABLE).with_owner("worker-1");
    let err = blind.save(&checkpoint(&a, 4)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_items_are_typed_errors_and_are_not_overwritten() {
    let (_moto, client) = setup().await;
    let put = |arn: String, value: Av| {
        let client = client.clone();
        async move {
            client
                .put_item()
                .table_name(TABLE)
                .item("stream_arn", Av::S(arn))
                .item("checkpoint", value)
                .item("owner", Av::S("someone".into()))
                .item("version", Av::N("7".into()))
                .send()
                .await
                .unwrap();
        }
    };
    let good = checkpoint(&arn(1), 5).to_string();
    let cases = [
        (
            "garbage",
            arn(1),
            Av::S("ddbs1;garbage".into()),
            ErrorKind::InvalidCheckpoint,
        ),
        (
            "empty",
            arn(2),
            Av::S(String::new()),
            ErrorKind::InvalidCheckpoint,
        ),
        (
            "truncated",
            arn(3),
            Av::S(good[..good.len() / 2].to_owned()),
            ErrorKind::InvalidCheckpoint,
        ),
        (
            "not a string",
            arn(4),
            Av::N("12".into()),
            ErrorKind::InvalidCheckpoint,
        ),
        (
            "another stream's",
            arn(5),
            Av::S(good.clone()),
            ErrorKind::CheckpointMismatch,
        ),
    ];
    for (what, stream, value, kind) in cases {
        put(stream.clone(), value).await;
        let before = raw_item(&client, &stream).await;
        let store = DynamoDbStore::new(client.clone(), TABLE);
        let err = store.load(&stream).await.unwrap_err();
        assert_eq!(err.kind(), kind, "{what}: {err}");
        let err = store.save(&checkpoint(&stream, 6)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "{what}: {err}");
        assert_eq!(
            raw_item(&client, &stream).await,
            before,
            "{what}: overwritten"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_table_is_a_store_error() {
    let moto = Moto::start();
    let store = DynamoDbStore::new(moto.dynamodb(), "no-such-table");
    assert_eq!(
        store.load(&arn(1)).await.unwrap_err().kind(),
        ErrorKind::Store
    );
    assert_eq!(
        store
            .save(&checkpoint(&arn(1), 1))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Store
    );
    assert_eq!(
        store.claim(&arn(1)).await.unwrap_err().kind(),
        ErrorKind::Store
    );
}

fn item(v: u64) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(format!("k{v}"))),
        ("v".to_owned(), AttributeValue::N(v.to_string())),
    ])
}

/// The recipe: a consumer whose stream is taken over gets `Conflict` through its committer
/// and stops; the new owner resumes from the last saved position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_over_consumer_sees_a_conflict_through_its_committer() {
    let (_moto, client) = setup().await;
    let sim = Simulator::new();
    for v in 0..20 {
        sim.put_item(item(v));
    }
    let builder = || {
        ChangeStream::builder(sim.client(), sim.stream_arn())
            .start(StartPosition::TrimHorizon)
            .poll_interval(Duration::from_millis(20))
            .max_poll_interval(Duration::from_millis(50))
    };

    let old_store = DynamoDbStore::new(client.clone(), TABLE);
    let resume = old_store.claim(&sim.stream_arn()).await.unwrap();
    let stream = builder().resume_from(resume).build().unwrap();
    let mut old = Committer::new(stream, old_store).every(1);
    for _ in 0..5 {
        let event = old.next().await.unwrap().unwrap();
        old.ack(&event);
    }
    let saved = old.flush().await.unwrap().unwrap();

    // A new deployment takes over.
    let new_store = DynamoDbStore::new(client.clone(), TABLE);
    assert_eq!(
        new_store.claim(&sim.stream_arn()).await.unwrap(),
        Some(saved)
    );

    // The old consumer's next save is refused, as an error item.
    let event = old.next().await.unwrap().unwrap();
    old.ack(&event);
    let err = old.next().await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(old.close().await.unwrap_err().kind(), ErrorKind::Conflict);

    // The new owner carries on from the fifth event.
    let stream = builder()
        .until_caught_up(true)
        .resume_from_store(&new_store)
        .await
        .unwrap()
        .build()
        .unwrap();
    let mut new = Committer::new(stream, new_store).every(3);
    let mut values = Vec::new();
    while let Some(event) = new.next().await {
        let event = event.unwrap();
        values.push(
            event.raw_new_image().unwrap()["v"]
                .as_n()
                .unwrap()
                .parse::<u64>()
                .unwrap(),
        );
        new.ack(&event);
    }
    assert_eq!(values, (5..20).collect::<Vec<_>>());
    assert!(new.close().await.unwrap().is_some());
}
