//! The simulator's records, read through the real SDK client: sequence numbers, view types,
//! record fields, TTL identity, and how table writes are routed to shards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use aws_sdk_dynamodbstreams::types::{OperationType, ShardIteratorType};
use dynamodb_stream::sim::{AttributeValue, Item, SequenceNumbers, Simulator, StreamViewType};
use support::sim::{item, key, open_shards};
use support::wire::{iterator, read, root, seqs, trim_horizon};

/// Numeric order of decimal strings without leading zeros.
fn seq_lt(a: &str, b: &str) -> bool {
    (a.len(), a) < (b.len(), b)
}

#[tokio::test]
async fn sequence_numbers_increase_across_the_stream() {
    let sim = Simulator::new();
    let mut last = String::new();
    for i in 0..3000 {
        let a = sim.put_item(item(&format!("k{}", i % 7), i));
        assert!((21..=40).contains(&a.sequence_number.len()));
        assert!(last.is_empty() || seq_lt(&last, &a.sequence_number));
        last = a.sequence_number;
        if i % 1000 == 500 {
            sim.split(&open_shards(&sim)[0], 2);
        }
    }
    assert!(last.len() > 21, "digit count grows over time");
}

#[tokio::test]
async fn forty_digit_sequence_numbers() {
    let sim = Simulator::builder()
        .sequence_numbers(SequenceNumbers::Wide)
        .build();
    let shard = root(&sim);
    for i in 0..8 {
        sim.put_item(item("k", i));
    }
    let all = seqs(&read(&sim, &trim_horizon(&sim, &shard).await).await);
    assert_eq!(all[0].len(), 39);
    assert_eq!(all[7].len(), 40);
    assert!(all.windows(2).all(|w| seq_lt(&w[0], &w[1])));
    let after = iterator(
        &sim,
        &shard,
        ShardIteratorType::AfterSequenceNumber,
        Some(&all[6]),
    )
    .await
    .unwrap();
    assert_eq!(seqs(&read(&sim, &after).await), [all[7].clone()]);
    let listed = sim
        .client()
        .describe_stream()
        .stream_arn(sim.stream_arn())
        .send()
        .await
        .unwrap()
        .stream_description
        .unwrap();
    assert_eq!(listed.table_name(), Some(sim.table_name().as_str()));
    assert_eq!(
        listed.stream_view_type(),
        Some(&StreamViewType::NewAndOldImages)
    );
    assert_eq!(listed.key_schema()[0].attribute_name(), "pk");
    let start = listed.shards()[0]
        .sequence_number_range()
        .unwrap()
        .starting_sequence_number()
        .unwrap();
    assert_eq!(start, all[0]);

    let dense = Simulator::builder()
        .sequence_numbers(SequenceNumbers::Dense { digits: 22 })
        .build();
    let a = dense.put_item(item("a", 1)).sequence_number;
    let b = dense.put_item(item("a", 2)).sequence_number;
    assert_eq!(a.len(), 22);
    assert_eq!(b.parse::<u128>().unwrap(), a.parse::<u128>().unwrap() + 1);
}

#[tokio::test]
async fn records_honour_the_view_type() {
    for view in [
        StreamViewType::KeysOnly,
        StreamViewType::NewImage,
        StreamViewType::OldImage,
        StreamViewType::NewAndOldImages,
    ] {
        let sim = Simulator::builder().view_type(view.clone()).build();
        sim.put_item(item("a", 1));
        sim.put_item(item("a", 1)); // identical rewrite: still MODIFY
        assert!(sim.delete_item(key("a")).is_some());
        assert!(sim.delete_item(key("a")).is_none());
        let page = read(&sim, &trim_horizon(&sim, &root(&sim)).await).await;
        let names: Vec<_> = page
            .records()
            .iter()
            .map(|r| r.event_name().unwrap().clone())
            .collect();
        assert_eq!(
            names,
            [
                OperationType::Insert,
                OperationType::Modify,
                OperationType::Remove
            ]
        );
        let (new, old) = match view {
            StreamViewType::KeysOnly => (false, false),
            StreamViewType::NewImage => (true, false),
            StreamViewType::OldImage => (false, true),
            _ => (true, true),
        };
        let images: Vec<(bool, bool)> = page
            .records()
            .iter()
            .map(|r| {
                let d = r.dynamodb().unwrap();
                assert_eq!(d.stream_view_type(), Some(&view));
                assert_eq!(d.keys().unwrap(), &key("a"));
                (d.new_image().is_some(), d.old_image().is_some())
            })
            .collect();
        assert_eq!(images, [(new, false), (new, old), (false, old)], "{view:?}");
        if new && old {
            let modify = page.records()[1].dynamodb().unwrap();
            assert_eq!(modify.old_image().unwrap(), &item("a", 1));
            assert_eq!(modify.new_image().unwrap(), &item("a", 1));
        }
    }
}

#[tokio::test]
async fn record_fields_and_ttl_identity() {
    let sim = Simulator::builder().key_schema("pk", Some("sk")).build();
    let mut it = item("a", 1);
    it.insert("sk".into(), AttributeValue::N("7".into()));
    it.insert("bin".into(), AttributeValue::B(vec![0u8, 255].into()));
    it.insert(
        "nested".into(),
        AttributeValue::M(Item::from([(
            "l".into(),
            AttributeValue::L(vec![AttributeValue::Bool(true), AttributeValue::Null(true)]),
        )])),
    );
    sim.put_item(it.clone());
    assert_eq!(sim.item(&it), Some(it.clone()));
    let mut k = key("a");
    k.insert("sk".into(), AttributeValue::N("7".into()));
    sim.ttl_delete(k.clone()).unwrap();
    assert_eq!(sim.item(&k), None);
    let page = read(&sim, &trim_horizon(&sim, &root(&sim)).await).await;
    let [insert, remove] = page.records() else {
        panic!("two records")
    };
    assert_eq!(insert.event_source(), Some("aws:dynamodb"));
    assert_eq!(insert.aws_region(), Some("us-east-1"));
    assert!(insert.event_version().is_some());
    assert_ne!(insert.event_id(), remove.event_id());
    assert!(insert.user_identity().is_none());
    let d = insert.dynamodb().unwrap();
    assert_eq!(d.new_image().unwrap(), &it);
    assert_eq!(d.keys().unwrap(), &k);
    assert!(d.size_bytes().unwrap() > 0);
    let created = d.approximate_creation_date_time().unwrap();
    assert_eq!(created.subsec_nanos(), 0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - created.secs()).abs() < 60);
    let who = remove.user_identity().unwrap();
    assert_eq!(who.r#type(), Some("Service"));
    assert_eq!(who.principal_id(), Some("dynamodb.amazonaws.com"));
    assert_eq!(remove.dynamodb().unwrap().old_image().unwrap(), &it);
}

#[tokio::test]
async fn writes_route_to_open_leaf_shards() {
    let sim = Simulator::builder().initial_shards(4).build();
    for i in 0..200 {
        sim.put_item(item(&format!("k{i}"), i));
    }
    assert!(
        sim.shards().iter().all(|s| s.records > 20),
        "keys spread over the roots"
    );
    for s in sim.shards() {
        sim.split(&s.shard_id, 2);
    }
    let before: Vec<usize> = sim.shards().iter().map(|s| s.records).collect();
    let home = sim.put_item(item("k0", 1000)).shard_id;
    let shards = sim.shards();
    let child = shards.iter().find(|s| s.shard_id == home).unwrap();
    assert!(child.open && child.parent_shard_id.is_some());
    assert_eq!(
        shards.iter().map(|s| s.records).sum::<usize>(),
        before.iter().sum::<usize>() + 1
    );
    // With every shard closed, a write opens a new root.
    for shard in open_shards(&sim) {
        sim.close_shard(&shard);
    }
    let fresh = sim.put_item(item("z", 1)).shard_id;
    let shards = sim.shards();
    let root = shards.iter().find(|s| s.shard_id == fresh).unwrap();
    assert!(root.open && root.parent_shard_id.is_none());
    let created = sim.create_shard();
    assert_ne!(created, fresh);
}
