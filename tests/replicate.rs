//! The `replicate` example's recipe against moto: writes, updates and deletes race the scan,
//! and the replica still ends equal to the table.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

#[allow(dead_code)]
#[path = "../examples/replicate/replica.rs"]
mod replica;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue as D;
use dynamodb_stream::ChangeStream;
use futures::StreamExt;
use replica::{Replica, Table};
use support::moto::Moto;

const SEEDED: u32 = 40;
const OPERATIONS: usize = 60;

fn key(i: u64) -> D {
    D::S(format!("item-{i:03}"))
}

/// Deletes, fresh inserts and updates (of scanned and unscanned, present and absent items),
/// as fast as moto takes them.
async fn write(client: aws_sdk_dynamodb::Client, done: Arc<AtomicUsize>) {
    for i in 0..OPERATIONS as u64 {
        let result = match i % 5 {
            0 => client
                .delete_item()
                .table_name("replicated")
                .key("pk", key(i * 7 % 50))
                .send()
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            1 => client
                .put_item()
                .table_name("replicated")
                .item("pk", D::S(format!("new-{i:03}")))
                .item("tags", D::Ss(vec!["z".into(), "a".into(), format!("t{i}")]))
                .send()
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            _ => client
                .update_item()
                .table_name("replicated")
                .key("pk", key(i * 13 % 50))
                .update_expression("SET v = :v ADD n :one")
                .expression_attribute_values(":v", D::N(i.to_string()))
                .expression_attribute_values(":one", D::N("1".into()))
                .send()
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
        };
        result.expect("a write to moto");
        done.fetch_add(1, Ordering::Release);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn the_replica_equals_the_table_after_writes_race_the_scan() {
    let moto = Moto::start();
    moto.create_table("replicated", false).await;
    let dynamodb = moto.dynamodb();
    for i in 0..u64::from(SEEDED) {
        dynamodb
            .put_item()
            .table_name("replicated")
            .item("pk", key(i))
            .item("v", D::N("0".into()))
            .item("tags", D::Ss(vec!["seed".into(), format!("s{i}")]))
            .item(
                "blob",
                D::B(vec![u8::try_from(i % 256).expect("small")].into()),
            )
            .send()
            .await
            .expect("PutItem");
    }

    let table = Table::describe(&dynamodb, "replicated")
        .await
        .expect("described");
    let bookmark = replica::bookmark(moto.streams(), &table.stream_arn).expect("a bookmark");
    let done = Arc::new(AtomicUsize::new(0));
    let writer = tokio::spawn(write(moto.dynamodb(), done.clone()));
    while done.load(Ordering::Acquire) < 10 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut replica = Replica::new(&table);
    let before = done.load(Ordering::Acquire);
    replica
        .scan(&dynamodb, "replicated", 3)
        .await
        .expect("the scan");
    let after = done.load(Ordering::Acquire);
    assert!(
        after > before,
        "writes happened during the scan ({before}..{after})"
    );
    assert!(after < OPERATIONS, "writes went on after the scan");
    writer.await.expect("the writer finished");

    let changes = ChangeStream::builder(moto.streams(), &table.stream_arn)
        .resume_from(bookmark)
        .poll_interval(Duration::from_millis(50))
        .max_poll_interval(Duration::from_millis(200))
        .until_caught_up(true)
        .build()
        .expect("a consumer");
    let events = tokio::time::timeout(Duration::from_secs(10), changes.collect::<Vec<_>>())
        .await
        .expect("the stream caught up");
    for event in events {
        replica.apply(&event.expect("no stream error"));
    }
    assert!(replica.skipped > 0, "some changes were already in the scan");
    assert!(replica.applied > 0);

    let mut table_now = Replica::new(&table);
    table_now
        .scan(&dynamodb, "replicated", 1000)
        .await
        .expect("the final scan");
    let expected: &HashMap<String, dynamodb_stream::Item> = table_now.items();
    assert_eq!(replica.items().len(), expected.len());
    assert!(
        replica.items() == expected,
        "the replica differs from the table"
    );
}
