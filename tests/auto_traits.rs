//! The public types can be moved across threads and spawned.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dynamodb_stream::status::Status;
use dynamodb_stream::{ChangeEvent, ChangeStream, Checkpoint, Error};

fn send_static<T: Send + 'static>() {}
fn send_sync<T: Send + Sync + 'static>() {}

#[test]
fn public_types_are_send_and_sync_where_it_matters() {
    send_static::<ChangeStream>();
    send_sync::<Error>();
    send_sync::<Checkpoint>();
    send_sync::<ChangeEvent>();
    send_sync::<Status>();
}

#[tokio::test]
async fn a_change_stream_can_be_spawned() {
    let sim = dynamodb_stream::sim::Simulator::new();
    let stream = ChangeStream::builder(sim.client(), sim.stream_arn())
        .until_caught_up(true)
        .build()
        .unwrap();
    let handle = tokio::spawn(async move {
        use futures::StreamExt;
        stream.count().await
    });
    assert_eq!(handle.await.unwrap(), 0);
}
