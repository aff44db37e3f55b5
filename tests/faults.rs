//! Each fault class, through the real SDK client and the simulator: what is handled inside,
//! and what reaches the user as which `ErrorKind`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use dynamodb_stream::sim::{Fault, Operation, Simulator};
use dynamodb_stream::{
    ChangeStream, ChangeStreamBuilder, Checkpoint, ErrorKind, StartPosition, TrimPolicy,
};
use futures::StreamExt;
use support::sim::*;

fn sim_with(records: u64) -> Simulator {
    let sim = Simulator::builder().seed(1).build();
    for v in 0..records {
        sim.put_item(item(&format!("k{}", v % 3), v));
    }
    sim
}

async fn first_error(sim: &Simulator) -> dynamodb_stream::Error {
    error_of(builder(sim)).await
}

#[tokio::test(start_paused = true)]
async fn expired_iterators_are_replaced_silently() {
    let sim = sim_with(10);
    sim.set_max_page(3);
    sim.inject(Operation::GetRecords, Fault::ExpiredIterator, 2);
    let events = drain_ok(builder(&sim).until_caught_up(true).build().unwrap()).await;
    let vs: Vec<u64> = events.iter().map(|e| pk_v(e).1).collect();
    assert_eq!(vs, (0..10).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn real_expiry_after_fifteen_idle_minutes_loses_nothing() {
    let sim = sim_with(4);
    sim.set_max_page(2);
    let mut stream = builder(&sim).build().unwrap();
    let first = take(&mut stream, 2).await;
    // The consumer stalls: the reader's next iterator (taken before the stall) expires.
    tokio::time::sleep(Duration::from_secs(20 * 60)).await;
    sim.put_item(item("k9", 4));
    let rest = take(&mut stream, 3).await;
    let vs: Vec<u64> = first.iter().chain(&rest).map(|e| pk_v(e).1).collect();
    assert_eq!(vs, [0, 1, 2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn transient_faults_are_retried_beyond_the_sdk() {
    let sim = sim_with(5);
    // 3 SDK attempts each: 7 failures outlast the SDK's own retries twice over.
    sim.inject(Operation::GetRecords, Fault::InternalServerError, 7);
    sim.inject(Operation::GetShardIterator, Fault::LimitExceeded, 4);
    sim.inject(Operation::DescribeStream, Fault::InternalServerError, 4);
    let events = drain_ok(builder(&sim).until_caught_up(true).build().unwrap()).await;
    assert_eq!(events.len(), 5);
    assert!(sim.calls().errors >= 15);
}

#[tokio::test(start_paused = true)]
async fn throttling_past_the_budget_is_a_typed_error() {
    let sim = sim_with(1);
    sim.inject(Operation::GetRecords, Fault::LimitExceeded, 10_000);
    let started = tokio::time::Instant::now();
    let err = first_error(&sim).await;
    assert_eq!(err.kind(), ErrorKind::Throttled);
    assert!(err.is_retryable());
    assert!(err.shard_id().is_some());
    // Bounded: the documented budget is about a minute of backoff.
    assert!(
        started.elapsed() < Duration::from_secs(180),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn server_errors_past_the_budget_are_a_typed_error() {
    let sim = sim_with(1);
    sim.inject(
        Operation::DescribeStream,
        Fault::InternalServerError,
        10_000,
    );
    let err = first_error(&sim).await;
    assert_eq!(err.kind(), ErrorKind::Service);
}

#[tokio::test(start_paused = true)]
async fn trimmed_position_is_data_loss_naming_shard_and_position() {
    let sim = sim_with(6);
    let mut stream = builder(&sim).build().unwrap();
    let seen = take(&mut stream, 2).await;
    let checkpoint = seen[1].checkpoint().clone();
    drop(stream);
    let shard = seen[1].shard_id().to_owned();
    sim.trim_all(&shard);
    let err = error_of(builder(&sim).resume_from(checkpoint)).await;
    assert_eq!(err.kind(), ErrorKind::TrimmedData);
    assert_eq!(err.shard_id(), Some(shard.as_str()));
    assert_eq!(err.sequence_number(), Some(seen[1].sequence_number()));
}

#[tokio::test(start_paused = true)]
async fn a_deleted_stream_ends_the_stream() {
    let sim = sim_with(3);
    sim.delete_stream();
    assert_eq!(first_error(&sim).await.kind(), ErrorKind::StreamNotFound);
}

#[tokio::test(start_paused = true)]
async fn an_unknown_arn_is_stream_not_found() {
    let sim = sim_with(1);
    let arn = "arn:aws:dynamodb:us-east-1:000000000000:table/nope/stream/2020-01-01T00:00:00.000";
    let mut stream = ChangeStream::builder(sim.client(), arn).build().unwrap();
    let err = stream.next().await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StreamNotFound);
    assert!(stream.next().await.is_none(), "an error ends the stream");
}

#[tokio::test]
async fn bad_configuration_is_refused_by_build() {
    let sim = Simulator::new();
    let cases = [
        ChangeStream::builder(sim.client(), "not-an-arn"),
        builder(&sim).page_size(0),
        builder(&sim).page_size(1001),
        builder(&sim).read_ahead(0),
        builder(&sim).poll_interval(Duration::ZERO),
        builder(&sim)
            .poll_interval(Duration::from_secs(5))
            .max_poll_interval(Duration::from_secs(1)),
    ];
    for b in cases {
        assert_eq!(b.build().unwrap_err().kind(), ErrorKind::Config);
    }
}

/// Every duration setter at both extremes: refused by `build()` as a configuration error, or
/// accepted and then working, never a panic (`Duration::MAX` once overflowed the pacer).
#[tokio::test(start_paused = true)]
async fn every_duration_at_its_extremes_is_refused_or_works() {
    type Set = fn(ChangeStreamBuilder, Duration) -> ChangeStreamBuilder;
    let setters: [(&str, Set); 6] = [
        ("poll_interval", |b, d| b.poll_interval(d)),
        ("max_poll_interval", |b, d| b.max_poll_interval(d)),
        ("describe_interval", |b, d| b.describe_interval(d)),
        ("retries base", |b, d| {
            b.retries(3, d, Duration::from_secs(1))
        }),
        ("retries max", |b, d| {
            b.retries(3, Duration::from_millis(1), d)
        }),
        ("retries both", |b, d| b.retries(3, d, d)),
    ];
    for (name, set) in setters {
        for extreme in [Duration::ZERO, Duration::MAX] {
            let sim = sim_with(5);
            sim.inject(Operation::GetRecords, Fault::LimitExceeded, 1);
            let stream = match set(builder(&sim), extreme).until_caught_up(true).build() {
                Ok(stream) => stream,
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::Config, "{name} = {extreme:?}: {e}");
                    continue;
                }
            };
            assert_ne!(extreme, Duration::MAX, "{name} = MAX was accepted");
            let vs: Vec<u64> = drain_ok(stream).await.iter().map(|e| pk_v(e).1).collect();
            assert_eq!(vs, (0..5).collect::<Vec<_>>(), "{name} = {extreme:?}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn checkpoints_of_another_stream_or_corrupt_text_are_refused() {
    let a = sim_with(2);
    let b = sim_with(2);
    let mut stream = builder(&a).build().unwrap();
    let cp = take(&mut stream, 1).await[0].checkpoint().clone();
    let err = builder(&b).resume_from(cp.clone()).build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CheckpointMismatch);
    let text = cp.to_string();
    let corrupt = text.replacen("=s", "=s9", 1);
    assert_eq!(
        corrupt.parse::<Checkpoint>().unwrap_err().kind(),
        ErrorKind::InvalidCheckpoint
    );
}

#[tokio::test(start_paused = true)]
async fn validation_errors_are_terminal_invalid_requests() {
    let sim = sim_with(2);
    sim.inject(Operation::GetShardIterator, Fault::Validation, 1);
    assert_eq!(first_error(&sim).await.kind(), ErrorKind::InvalidRequest);
}

#[tokio::test(start_paused = true)]
async fn latest_sees_only_new_records() {
    let sim = sim_with(5);
    let mut stream = builder(&sim).start(StartPosition::Latest).build().unwrap();
    // Let the consumer take its LATEST iterators before writing.
    let pending = tokio::time::timeout(Duration::from_secs(1), stream.next()).await;
    assert!(pending.is_err());
    sim.put_item(item("new", 100));
    let ev = take(&mut stream, 1).await;
    assert_eq!(pk_v(&ev[0]), ("new".to_owned(), 100));
}

#[tokio::test(start_paused = true)]
async fn skipping_trimmed_data_reports_the_gap_on_the_next_event_and_in_status() {
    let sim = sim_with(0);
    let shard = sim.shards()[0].shard_id.clone();
    for v in 0..6 {
        sim.put_item(item("k", v));
    }
    let mut stream = builder(&sim).build().unwrap();
    let seen = take(&mut stream, 2).await;
    drop(stream);
    // Records 2 and 3 age out unread; 4 and 5 are still there.
    let all: Vec<String> = {
        let mut s = builder(&sim).build().unwrap();
        take(&mut s, 6)
            .await
            .iter()
            .map(|e| e.sequence_number().to_string())
            .collect()
    };
    sim.trim_before(&shard, &all[4]);
    let mut resumed = builder(&sim)
        .resume_from(seen[1].checkpoint().clone())
        .on_trimmed(TrimPolicy::SkipToTrimHorizon)
        .build()
        .unwrap();
    let rest = take(&mut resumed, 2).await;
    assert_eq!(rest.iter().map(|e| pk_v(e).1).collect::<Vec<_>>(), [4, 5]);
    let gap = rest[0]
        .gap_before()
        .expect("the gap is reported on the next event");
    assert_eq!(gap.shard_id, shard);
    assert_eq!(gap.after.as_ref(), Some(seen[1].sequence_number()));
    assert!(rest[1].gap_before().is_none());
    assert_eq!(resumed.status().gaps, vec![gap.clone()]);

    // The default policy ends the stream instead.
    let err = error_of(builder(&sim).resume_from(seen[1].checkpoint().clone())).await;
    assert_eq!(err.kind(), ErrorKind::TrimmedData);
}

#[tokio::test(start_paused = true)]
async fn a_checkpointed_shard_that_aged_out_unread_is_reported() {
    let sim = Simulator::builder().initial_shards(1).seed(3).build();
    let parent = sim.shards()[0].shard_id.clone();
    for v in 0..4 {
        sim.put_item(item("k", v));
    }
    let mut stream = builder(&sim).build().unwrap();
    let first = take(&mut stream, 1).await;
    drop(stream);
    let child = sim.split(&parent, 1).remove(0);
    sim.put_item(item("k", 10));
    sim.age_out(&parent);
    let cp = first[0].checkpoint().clone();
    let err = error_of(builder(&sim).resume_from(cp.clone())).await;
    assert_eq!(err.kind(), ErrorKind::TrimmedData);
    assert_eq!(err.shard_id(), Some(parent.as_str()));
    let mut skipping = builder(&sim)
        .resume_from(cp)
        .on_trimmed(TrimPolicy::SkipToTrimHorizon)
        .build()
        .unwrap();
    let next = take(&mut skipping, 1).await;
    assert_eq!(next[0].shard_id(), child);
    assert_eq!(skipping.status().gaps.len(), 1);
    assert_eq!(skipping.status().gaps[0].shard_id, parent);
}

/// A client that cannot sign (no credentials) fails at once with a configuration error,
/// instead of being retried like a network failure.
#[tokio::test(start_paused = true)]
async fn a_client_without_credentials_is_a_config_error_not_retried() {
    let sim = sim_with(1);
    let config = aws_sdk_dynamodbstreams::Config::builder()
        .behavior_version(aws_sdk_dynamodbstreams::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodbstreams::config::Region::new("us-east-1"))
        .endpoint_url("http://sim.invalid")
        .http_client(sim.http_client())
        .build();
    let client = aws_sdk_dynamodbstreams::Client::from_conf(config);
    let started = tokio::time::Instant::now();
    let mut stream = ChangeStream::builder(client, sim.stream_arn())
        .build()
        .unwrap();
    let err = stream.next().await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}
