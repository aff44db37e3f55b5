//! The simulator's service behaviour, driven through the real SDK client: listing and
//! pagination, lineage, iterators and their expiry, pages, trims, faults and retries, the
//! deleted stream, and malformed input. Records themselves: `sim_records.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::config::retry::RetryConfig;
use aws_sdk_dynamodbstreams::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodbstreams::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodbstreams::operation::get_shard_iterator::GetShardIteratorError;
use aws_sdk_dynamodbstreams::types::{Shard, ShardFilter, ShardFilterType, ShardIteratorType};
use dynamodb_stream::sim::{AttributeValue, Fault, Operation, RecordKind, SimRecord, Simulator};
use support::sim::{item, key};
use support::wire::{iterator, read, root, seqs, trim_horizon};

/// Every page of a full listing.
async fn pages(
    sim: &Simulator,
    limit: i32,
    filter: Option<ShardFilter>,
) -> Vec<(Vec<Shard>, Option<String>)> {
    let client = sim.client();
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let d = client
            .describe_stream()
            .stream_arn(sim.stream_arn())
            .limit(limit)
            .set_exclusive_start_shard_id(start)
            .set_shard_filter(filter.clone())
            .send()
            .await
            .unwrap()
            .stream_description
            .unwrap();
        let last = d.last_evaluated_shard_id().map(str::to_owned);
        out.push((d.shards().to_vec(), last.clone()));
        match last {
            Some(l) => start = Some(l),
            None => return out,
        }
    }
}

async fn listed(sim: &Simulator) -> Vec<Shard> {
    pages(sim, 100, None)
        .await
        .into_iter()
        .flat_map(|(s, _)| s)
        .collect()
}

fn children_of(shard: &str) -> ShardFilter {
    ShardFilter::builder()
        .r#type(ShardFilterType::ChildShards)
        .shard_id(shard)
        .build()
}

/// A client like `sim.client()` but without retries, to see single answers.
fn no_retry_client(sim: &Simulator) -> Client {
    let config = aws_sdk_dynamodbstreams::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url("http://sim.invalid")
        .credentials_provider(Credentials::new("a", "b", None, None, "test"))
        .http_client(sim.http_client())
        .retry_config(RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

#[tokio::test]
async fn listing_paginates_250_shards_in_a_shuffled_order() {
    let sim = Simulator::builder().initial_shards(250).build();
    let pages = pages(&sim, 100, None).await;
    let sizes: Vec<usize> = pages.iter().map(|(s, _)| s.len()).collect();
    assert_eq!(sizes, [100, 100, 50]);
    assert!(pages[0].1.is_some() && pages[1].1.is_some() && pages[2].1.is_none());
    let ids: Vec<String> = pages
        .iter()
        .flat_map(|(s, _)| s)
        .map(|s| s.shard_id().unwrap().to_owned())
        .collect();
    let created: Vec<String> = sim.shards().into_iter().map(|s| s.shard_id).collect();
    assert_eq!(
        ids.iter().collect::<HashSet<_>>(),
        created.iter().collect::<HashSet<_>>()
    );
    assert_ne!(ids, created, "the listing must not be chronological");
    assert!(
        ids[0].starts_with("shardId-")
            && ids[0].len() == "shardId-00000001700000000000-1a2b3c4d".len()
    );
    // Open shards: a starting number and no ending one.
    let first = &pages[0].0[0];
    let range = first.sequence_number_range().unwrap();
    assert!(range.starting_sequence_number().is_some() && range.ending_sequence_number().is_none());
    assert!(first.parent_shard_id().is_none());
    // Same order again: the shuffle is deterministic.
    let again: Vec<String> = listed(&sim)
        .await
        .iter()
        .map(|s| s.shard_id().unwrap().to_owned())
        .collect();
    assert_eq!(again, ids);
}

#[tokio::test]
async fn unshuffled_listing_is_chronological() {
    let sim = Simulator::builder()
        .initial_shards(5)
        .shuffle_listing(false)
        .build();
    let ids: Vec<String> = listed(&sim)
        .await
        .iter()
        .map(|s| s.shard_id().unwrap().to_owned())
        .collect();
    let created: Vec<String> = sim.shards().into_iter().map(|s| s.shard_id).collect();
    assert_eq!(ids, created);
}

#[tokio::test]
async fn trailing_empty_listing_page() {
    let sim = Simulator::builder()
        .initial_shards(200)
        .trailing_empty_listing_page(true)
        .build();
    let sizes: Vec<(usize, bool)> = pages(&sim, 100, None)
        .await
        .iter()
        .map(|(s, l)| (s.len(), l.is_some()))
        .collect();
    assert_eq!(sizes, [(100, true), (100, true), (0, false)]);
    let small = Simulator::builder()
        .initial_shards(3)
        .trailing_empty_listing_page(true)
        .build();
    let sizes: Vec<(usize, bool)> = pages(&small, 100, None)
        .await
        .iter()
        .map(|(s, l)| (s.len(), l.is_some()))
        .collect();
    assert_eq!(sizes, [(3, true), (0, false)]);
}

#[tokio::test]
async fn describe_limit_above_100_is_a_validation_error() {
    let sim = Simulator::new();
    let err = sim
        .client()
        .describe_stream()
        .stream_arn(sim.stream_arn())
        .limit(101)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.into_service_error().code(), Some("ValidationException"));
}

#[tokio::test]
async fn child_shards_filter_returns_the_children() {
    let sim = Simulator::new();
    let parent = root(&sim);
    let kids = sim.split(&parent, 2);
    assert_eq!(kids.len(), 2);
    let got: Vec<Shard> = pages(&sim, 100, Some(children_of(&parent)))
        .await
        .into_iter()
        .flat_map(|(s, _)| s)
        .collect();
    let ids: HashSet<&str> = got.iter().map(|s| s.shard_id().unwrap()).collect();
    assert_eq!(ids, kids.iter().map(String::as_str).collect());
    assert!(
        got.iter()
            .all(|s| s.parent_shard_id() == Some(parent.as_str()))
    );
    let none = pages(&sim, 100, Some(children_of(&kids[0]))).await;
    assert!(none[0].0.is_empty() && none[0].1.is_none());
    // The parent is listed closed.
    let all = listed(&sim).await;
    let p = all
        .iter()
        .find(|s| s.shard_id() == Some(parent.as_str()))
        .unwrap();
    assert!(
        p.sequence_number_range()
            .unwrap()
            .ending_sequence_number()
            .is_some()
    );
}

#[tokio::test(start_paused = true)]
async fn hidden_children_appear_after_their_delay() {
    let sim = Simulator::new();
    let parent = root(&sim);
    let kids = sim.split_hidden(&parent, 2, Duration::from_secs(30));
    sim.put_item(item("a", 1)); // the children take writes while hidden
    assert_eq!(listed(&sim).await.len(), 1);
    assert!(
        pages(&sim, 100, Some(children_of(&parent))).await[0]
            .0
            .is_empty()
    );
    assert!(sim.shards().iter().filter(|s| !s.visible).count() == 2);
    tokio::time::advance(Duration::from_secs(31)).await;
    assert_eq!(listed(&sim).await.len(), 3);
    assert_eq!(
        pages(&sim, 100, Some(children_of(&parent))).await[0]
            .0
            .len(),
        kids.len()
    );
}

#[tokio::test]
async fn closed_shard_final_page_has_records_and_no_iterator() {
    let sim = Simulator::new();
    let shard = root(&sim);
    for i in 0..5 {
        sim.put_item(item(&format!("k{i}"), i));
    }
    let it = trim_horizon(&sim, &shard).await;
    // Open, at the tip: records, and an iterator.
    let page = read(&sim, &it).await;
    assert_eq!(page.records().len(), 5);
    let tip = page.next_shard_iterator().unwrap().to_owned();
    let empty = read(&sim, &tip).await;
    assert!(empty.records().is_empty() && empty.next_shard_iterator().is_some());
    // Closed: the final page carries the records and no iterator.
    sim.split(&shard, 2);
    let page = read(&sim, &trim_horizon(&sim, &shard).await).await;
    assert_eq!(page.records().len(), 5);
    assert!(page.next_shard_iterator().is_none());
    // And from the tip taken before the close: an empty final page.
    let end = read(&sim, &tip).await;
    assert!(end.records().is_empty() && end.next_shard_iterator().is_none());
}

#[tokio::test]
async fn pages_respect_limit_max_page_and_one_megabyte() {
    let sim = Simulator::new();
    let shard = root(&sim);
    for i in 0..25 {
        sim.put_item(item(&format!("k{i}"), i));
    }
    let mut it = trim_horizon(&sim, &shard).await;
    let mut sizes = Vec::new();
    for _ in 0..4 {
        let page = sim
            .client()
            .get_records()
            .shard_iterator(&it)
            .limit(10)
            .send()
            .await
            .unwrap();
        sizes.push(page.records().len());
        it = page.next_shard_iterator().unwrap().to_owned();
    }
    assert_eq!(sizes, [10, 10, 5, 0]);
    sim.set_max_page(3);
    assert_eq!(
        read(&sim, &trim_horizon(&sim, &shard).await)
            .await
            .records()
            .len(),
        3
    );

    let big = Simulator::new();
    for i in 0..15 {
        let mut it = item(&format!("b{i}"), i);
        it.insert("blob".into(), AttributeValue::S("x".repeat(100_000)));
        big.put_item(it);
    }
    let page = read(&big, &trim_horizon(&big, &root(&big)).await).await;
    assert!(
        (9..=10).contains(&page.records().len()),
        "{}",
        page.records().len()
    );
}

#[tokio::test(start_paused = true)]
async fn get_records_limit_above_1000_is_limit_exceeded() {
    let sim = Simulator::new();
    let it = trim_horizon(&sim, &root(&sim)).await;
    let err = sim
        .client()
        .get_records()
        .shard_iterator(it)
        .limit(1001)
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_limit_exceeded_exception());
    assert_eq!(sim.calls().get_records, 3, "the SDK retries it");
}

#[tokio::test]
async fn empty_pages_do_not_advance() {
    let sim = Simulator::new();
    let shard = root(&sim);
    for i in 0..3 {
        sim.put_item(item("k", i));
    }
    sim.empty_pages(&shard, 2);
    let mut it = trim_horizon(&sim, &shard).await;
    for _ in 0..2 {
        let page = read(&sim, &it).await;
        assert!(page.records().is_empty());
        it = page.next_shard_iterator().unwrap().to_owned();
    }
    assert_eq!(read(&sim, &it).await.records().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn iterators_expire_after_15_minutes() {
    let sim = Simulator::new();
    let shard = root(&sim);
    let it = trim_horizon(&sim, &shard).await;
    tokio::time::advance(Duration::from_secs(14 * 60 + 59)).await;
    let fresh = read(&sim, &it)
        .await
        .next_shard_iterator()
        .unwrap()
        .to_owned();
    tokio::time::advance(Duration::from_secs(1)).await;
    let err = sim
        .client()
        .get_records()
        .shard_iterator(&it)
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_expired_iterator_exception());
    // The iterator issued with the page has its own clock.
    read(&sim, &fresh).await;
}

#[tokio::test]
async fn trims_surface_as_trimmed_data_access() {
    let sim = Simulator::new();
    let shard = root(&sim);
    let horizon = trim_horizon(&sim, &shard).await;
    for i in 0..10 {
        sim.put_item(item("k", i));
    }
    let all = seqs(&read(&sim, &horizon).await);
    sim.trim_before(&shard, &all[4]);
    let trimmed = |r: Result<String, SdkError<GetShardIteratorError>>| {
        r.unwrap_err()
            .into_service_error()
            .is_trimmed_data_access_exception()
    };
    assert!(trimmed(
        iterator(
            &sim,
            &shard,
            ShardIteratorType::AtSequenceNumber,
            Some(&all[2])
        )
        .await
    ));
    assert!(trimmed(
        iterator(
            &sim,
            &shard,
            ShardIteratorType::AfterSequenceNumber,
            Some(&all[3])
        )
        .await
    ));
    let at = iterator(
        &sim,
        &shard,
        ShardIteratorType::AtSequenceNumber,
        Some(&all[4]),
    )
    .await
    .unwrap();
    assert_eq!(seqs(&read(&sim, &at).await)[0], all[4]);
    let after = iterator(
        &sim,
        &shard,
        ShardIteratorType::AfterSequenceNumber,
        Some(&all[4]),
    )
    .await
    .unwrap();
    assert_eq!(seqs(&read(&sim, &after).await)[0], all[5]);
    assert_eq!(
        seqs(&read(&sim, &trim_horizon(&sim, &shard).await).await),
        all[4..]
    );
    // An iterator taken before the trim now points below it.
    let err = sim
        .client()
        .get_records()
        .shard_iterator(&horizon)
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_trimmed_data_access_exception());
    assert_eq!(sim.shards()[0].trimmed, 4);

    sim.trim_all(&shard);
    let page = read(&sim, &trim_horizon(&sim, &shard).await).await;
    assert!(page.records().is_empty() && page.next_shard_iterator().is_some());
    assert!(trimmed(
        iterator(
            &sim,
            &shard,
            ShardIteratorType::AtSequenceNumber,
            Some(&all[9])
        )
        .await
    ));
}

#[tokio::test(start_paused = true)]
async fn injected_faults_map_to_sdk_errors() {
    let sim = Simulator::new();
    let it = trim_horizon(&sim, &root(&sim)).await;
    let get = || sim.client().get_records().shard_iterator(&it).send();

    sim.inject(Operation::GetRecords, Fault::ExpiredIterator, 1);
    assert!(
        get()
            .await
            .unwrap_err()
            .into_service_error()
            .is_expired_iterator_exception()
    );
    sim.inject(Operation::GetRecords, Fault::TrimmedDataAccess, 1);
    assert!(
        get()
            .await
            .unwrap_err()
            .into_service_error()
            .is_trimmed_data_access_exception()
    );
    sim.inject(Operation::Any, Fault::ResourceNotFound, 1);
    assert!(
        get()
            .await
            .unwrap_err()
            .into_service_error()
            .is_resource_not_found_exception()
    );
    sim.inject(Operation::GetRecords, Fault::Validation, 1);
    assert_eq!(
        get().await.unwrap_err().into_service_error().code(),
        Some("ValidationException")
    );
    sim.inject(Operation::GetRecords, Fault::LimitExceeded, 3);
    assert!(
        get()
            .await
            .unwrap_err()
            .into_service_error()
            .is_limit_exceeded_exception()
    );
    sim.inject(Operation::GetRecords, Fault::InternalServerError, 3);
    assert!(
        get()
            .await
            .unwrap_err()
            .into_service_error()
            .is_internal_server_error()
    );
    // Scoped to their operation.
    sim.inject(Operation::DescribeStream, Fault::InternalServerError, 3);
    get().await.unwrap();
    let err = sim
        .client()
        .describe_stream()
        .stream_arn(sim.stream_arn())
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_internal_server_error());
    sim.inject(Operation::GetShardIterator, Fault::ResourceNotFound, 1);
    let err = iterator(&sim, &root(&sim), ShardIteratorType::Latest, None)
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_resource_not_found_exception());
}

#[tokio::test(start_paused = true)]
async fn the_sdk_retries_an_injected_500_once() {
    let sim = Simulator::new();
    sim.put_item(item("a", 1));
    let it = trim_horizon(&sim, &root(&sim)).await;
    let before = sim.calls();
    sim.inject(Operation::GetRecords, Fault::InternalServerError, 1);
    let page = read(&sim, &it).await;
    assert_eq!(page.records().len(), 1);
    let after = sim.calls();
    assert_eq!(after.get_records - before.get_records, 2);
    assert_eq!(after.errors - before.errors, 1);
    assert_eq!(
        after.total,
        after.get_records + after.get_shard_iterator + after.describe_stream
    );
}

#[tokio::test(start_paused = true)]
async fn describe_stream_is_rate_limited_per_second() {
    let sim = Simulator::new();
    let client = no_retry_client(&sim);
    let call = || client.describe_stream().stream_arn(sim.stream_arn()).send();
    for _ in 0..10 {
        call().await.unwrap();
    }
    let err = call().await.unwrap_err().into_service_error();
    assert_eq!(err.code(), Some("LimitExceededException"));
    tokio::time::advance(Duration::from_secs(1)).await;
    call().await.unwrap();
    // The retrying client rides through the throttle in (virtual) time.
    for _ in 0..30 {
        sim.client()
            .describe_stream()
            .stream_arn(sim.stream_arn())
            .send()
            .await
            .ok();
    }
    assert!(sim.calls().errors >= 1);
}

#[tokio::test]
async fn deleted_stream_is_not_found_everywhere() {
    let sim = Simulator::new();
    let shard = root(&sim);
    let it = trim_horizon(&sim, &shard).await;
    sim.delete_stream();
    let client = sim.client();
    let e = client
        .describe_stream()
        .stream_arn(sim.stream_arn())
        .send()
        .await
        .unwrap_err();
    assert!(e.into_service_error().is_resource_not_found_exception());
    let e = iterator(&sim, &shard, ShardIteratorType::TrimHorizon, None)
        .await
        .unwrap_err();
    assert!(e.into_service_error().is_resource_not_found_exception());
    let e = client
        .get_records()
        .shard_iterator(it)
        .send()
        .await
        .unwrap_err();
    assert!(e.into_service_error().is_resource_not_found_exception());
    assert!(
        client
            .list_streams()
            .send()
            .await
            .unwrap()
            .streams()
            .is_empty()
    );
}

#[tokio::test]
async fn wrong_arn_unknown_and_aged_out_shards() {
    let sim = Simulator::new();
    let other = Simulator::new();
    assert_ne!(sim.stream_arn(), other.stream_arn());
    let e = sim
        .client()
        .describe_stream()
        .stream_arn(other.stream_arn())
        .send()
        .await
        .unwrap_err();
    assert!(e.into_service_error().is_resource_not_found_exception());
    let e = iterator(
        &sim,
        "shardId-00000000000000000000-00000000",
        ShardIteratorType::Latest,
        None,
    )
    .await
    .unwrap_err();
    assert!(e.into_service_error().is_resource_not_found_exception());
    // An iterator from another simulator is not valid here.
    let foreign = trim_horizon(&other, &root(&other)).await;
    let e = sim
        .client()
        .get_records()
        .shard_iterator(foreign)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.into_service_error().code(), Some("ValidationException"));
    let e = sim
        .client()
        .get_records()
        .shard_iterator("garbage")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.into_service_error().code(), Some("ValidationException"));

    let parent = root(&sim);
    sim.put_item(item("a", 1));
    let kids = sim.split(&parent, 1);
    sim.age_out(&parent);
    let shards = listed(&sim).await;
    assert_eq!(shards.len(), 1);
    assert_eq!(shards[0].shard_id(), Some(kids[0].as_str()));
    assert_eq!(shards[0].parent_shard_id(), Some(parent.as_str()));
    let e = iterator(&sim, &parent, ShardIteratorType::TrimHorizon, None)
        .await
        .unwrap_err();
    assert!(e.into_service_error().is_resource_not_found_exception());
}

#[tokio::test]
async fn sequence_numbers_are_validated_per_shard() {
    let sim = Simulator::builder().initial_shards(2).build();
    let shards: Vec<String> = sim.shards().into_iter().map(|s| s.shard_id).collect();
    let a = sim
        .append(&shards[0], SimRecord::new(RecordKind::Insert, key("x")))
        .unwrap();
    sim.append(&shards[1], SimRecord::new(RecordKind::Insert, key("y")))
        .unwrap();
    let e = iterator(
        &sim,
        &shards[1],
        ShardIteratorType::AtSequenceNumber,
        Some(&a),
    )
    .await
    .unwrap_err();
    assert_eq!(e.into_service_error().code(), Some("ValidationException"));
    let e = iterator(
        &sim,
        &shards[0],
        ShardIteratorType::AtSequenceNumber,
        Some("12x"),
    )
    .await
    .unwrap_err();
    assert_eq!(e.into_service_error().code(), Some("ValidationException"));
    let e = iterator(&sim, &shards[0], ShardIteratorType::AtSequenceNumber, None)
        .await
        .unwrap_err();
    assert_eq!(e.into_service_error().code(), Some("ValidationException"));
    iterator(
        &sim,
        &shards[0],
        ShardIteratorType::AtSequenceNumber,
        Some(&a),
    )
    .await
    .unwrap();
    // Raw appends to closed or unknown shards fail.
    sim.close_shard(&shards[0]);
    assert!(
        sim.append(&shards[0], SimRecord::new(RecordKind::Insert, key("x")))
            .is_err()
    );
    assert!(
        sim.append("nope", SimRecord::new(RecordKind::Insert, key("x")))
            .is_err()
    );
}

#[tokio::test]
async fn latest_sees_only_later_records() {
    let sim = Simulator::new();
    let shard = root(&sim);
    sim.put_item(item("a", 1));
    let latest = iterator(&sim, &shard, ShardIteratorType::Latest, None)
        .await
        .unwrap();
    sim.put_item(item("a", 2));
    let page = read(&sim, &latest).await;
    assert_eq!(page.records().len(), 1);
    assert_eq!(
        page.records()[0].dynamodb().unwrap().new_image().unwrap(),
        &item("a", 2)
    );
}

#[test]
fn protocol_entry_point_never_panics_on_bad_input() {
    let sim = Simulator::new();
    let cases: [(&str, &[u8]); 7] = [
        ("DynamoDBStreams_20120810.GetRecords", b"not json"),
        ("GetRecords", b"{\"ShardIterator\":5}"),
        ("GetRecords", b"{\"ShardIterator\":\"x|1|zz\",\"Limit\":-4}"),
        ("DescribeStream", b"{}"),
        ("GetShardIterator", b"{\"StreamArn\":\"a\"}"),
        ("Frobnicate", b"{}"),
        ("", b"\xff\xfe"),
    ];
    for (target, body) in cases {
        let (status, body) = sim.handle(target, body);
        assert_eq!(status, 400, "{target}");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(v["__type"].as_str().unwrap().contains('#'));
    }
    let (status, body) = sim.handle("ListStreams", b"");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["Streams"][0]["StreamArn"], sim.stream_arn());
    assert_eq!(sim.calls().total, 8);
    assert_eq!(sim.calls().errors, 7);
    let debug = format!("{sim:?}");
    assert!(debug.contains("Simulator") && debug.contains(&sim.stream_arn()));
}

#[test]
fn simulator_is_send_sync_static() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Simulator>();
}
