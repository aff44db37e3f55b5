//! The fast path and the SDK's decoding give the same events: generated writes of every
//! attribute type (nested maps and lists, binary and sets, numbers no `f64` holds, unicode and
//! escapes in values and names), deletes and TTL deletes, under every view type, across a
//! split and several pages per shard, served by the simulator and read both ways.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::fmt;

use dynamodb_stream::sim::{AttributeValue as A, Item, Simulator, StreamViewType};
use dynamodb_stream::status::PageCounts;
use dynamodb_stream::{ChangeEvent, ChangeStream, Decoding, Readers, StartPosition};
use futures::StreamExt;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use support::attrs::{text, value};
use support::sim::paused_runtime;

#[derive(Clone, Debug)]
enum Write {
    Put(u8, BTreeMap<String, A>),
    Delete(u8),
    Expire(u8),
    Split,
}

fn writes() -> impl Strategy<Value = Vec<Write>> {
    let write = prop_oneof![
        6 => (0..6_u8, btree_map(text(), value(), 0..5)).prop_map(|(k, a)| Write::Put(k, a)),
        1 => (0..6_u8).prop_map(Write::Delete),
        1 => (0..6_u8).prop_map(Write::Expire),
        1 => Just(Write::Split),
    ];
    vec(write, 1..24)
}

fn view() -> impl Strategy<Value = StreamViewType> {
    prop::sample::select(vec![
        StreamViewType::KeysOnly,
        StreamViewType::NewImage,
        StreamViewType::OldImage,
        StreamViewType::NewAndOldImages,
    ])
}

fn key(k: u8) -> Item {
    Item::from([("pk".to_owned(), A::S(format!("k{k}\u{e9}\"")))])
}

fn apply(sim: &Simulator, writes: &[Write]) {
    for write in writes {
        match write {
            Write::Put(k, attributes) => {
                let mut item = key(*k);
                // Prefixed, so that no generated name replaces the key.
                item.extend(attributes.iter().map(|(n, v)| (format!("a{n}"), v.clone())));
                sim.put_item(item);
            }
            Write::Delete(k) => drop(sim.delete_item(key(*k))),
            Write::Expire(k) => drop(sim.ttl_delete(key(*k))),
            Write::Split => {
                if let Some(open) = sim.shards().into_iter().find(|s| s.open) {
                    sim.split(&open.shard_id, 2);
                }
            }
        }
    }
}

/// Every event of the stream read to its current end, the final checkpoint's text, the page
/// counts, and how many `GetRecords` calls the read made.
async fn read(
    sim: &Simulator,
    decoding: Decoding,
    page: u32,
) -> (Vec<ChangeEvent>, String, PageCounts, u64) {
    let calls = sim.calls().get_records;
    let mut stream = ChangeStream::builder(sim.client(), sim.stream_arn())
        .start(StartPosition::TrimHorizon)
        .until_caught_up(true)
        .readers(Readers::Inline)
        .page_size(page)
        .decoding(decoding)
        .build()
        .unwrap();
    let mut events = Vec::new();
    while let Some(event) = stream.next().await {
        events.push(event.unwrap());
    }
    let checkpoint = stream.checkpoint().to_string();
    (
        events,
        checkpoint,
        stream.status().pages,
        sim.calls().get_records - calls,
    )
}

/// Any decoded value, bytes included (which `serde_json::Value` cannot hold).
#[derive(Debug, PartialEq)]
enum Any {
    Null,
    Bool(bool),
    Int(i128),
    Float(u64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Any>),
    Map(BTreeMap<String, Any>),
}

impl<'de> Deserialize<'de> for Any {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyVisitor)
    }
}

struct AnyVisitor;

impl<'de> Visitor<'de> for AnyVisitor {
    type Value = Any;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("anything")
    }
    fn visit_unit<E>(self) -> Result<Any, E> {
        Ok(Any::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Any, E> {
        Ok(Any::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Any, E> {
        Ok(Any::Int(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Any, E> {
        Ok(Any::Int(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Any, E> {
        Ok(Any::Float(v.to_bits()))
    }
    fn visit_str<E>(self, v: &str) -> Result<Any, E> {
        Ok(Any::Str(v.to_owned()))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Any, E> {
        Ok(Any::Bytes(v.to_vec()))
    }
    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Any, S::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(Any::List(out))
    }
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Any, M::Error> {
        let mut out = BTreeMap::new();
        while let Some((k, v)) = map.next_entry()? {
            out.insert(k, v);
        }
        Ok(Any::Map(out))
    }
}

/// What the typed accessors make of an event (errors compared by kind).
fn typed(event: &ChangeEvent) -> impl PartialEq + fmt::Debug {
    let kind = |e: dynamodb_stream::Error| e.kind();
    (
        event.keys::<Any>().map_err(kind),
        event.new_image::<Any>().map_err(kind),
        event.old_image::<Any>().map_err(kind),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_fast_path_and_the_sdk_decoding_yield_the_same_events(
        writes in writes(),
        view in view(),
        page in 1..6_u32,
    ) {
        paused_runtime().block_on(async {
            let sim = Simulator::builder().view_type(view).describe_rate_limit(false).build();
            apply(&sim, &writes);
            let (sdk, sdk_end, sdk_pages, sdk_calls) = read(&sim, Decoding::Sdk, page).await;
            let (raw, raw_end, raw_pages, raw_calls) = read(&sim, Decoding::Raw, page).await;
            prop_assert_eq!(sdk_pages.sdk, sdk_calls);
            prop_assert_eq!((raw_pages.raw, raw_pages.fallback), (raw_calls, 0));
            prop_assert_eq!(raw.len(), sdk.len());
            for (r, s) in raw.iter().zip(&sdk) {
                // Every field, raw images included (built from the page on first use).
                prop_assert_eq!(r.change(), s.change());
                prop_assert_eq!(r.shard_id(), s.shard_id());
                prop_assert_eq!(r.approximate_creation_time(), s.approximate_creation_time());
                prop_assert_eq!(r.is_ttl_delete(), s.is_ttl_delete());
                prop_assert_eq!(r.checkpoint().to_string(), s.checkpoint().to_string());
                prop_assert_eq!(typed(r), typed(s));
            }
            prop_assert_eq!(raw_end, sdk_end);
            Ok(())
        })?;
    }
}
