//! An in-memory replica of a DynamoDB table, kept equal to it through its stream.
//!
//! The recipe, and why each step is needed:
//!
//! 1. **Bookmark the stream** before scanning ([`bookmark`]): every change made after this
//!    point will be read from the stream, so nothing the scan misses is lost.
//! 2. **Scan the table**, paginated, with strongly consistent reads ([`Replica::scan`]). The
//!    scan is no snapshot: each page sees the table as it is when read, so changes made during
//!    the scan are in it or not, item by item. (An eventually consistent page could even show
//!    an item older than the bookmark, a change the stream will never replay.)
//! 3. **Apply the stream from the bookmark** ([`Replica::apply`]). Changes made between the
//!    bookmark and the moment the scan read an item are already in the replica: applying them
//!    again would step the item back in time. A change applies on top of what the replica
//!    holds exactly when its *old image* equals that: then the scan read the item before the
//!    change. Otherwise the scan read it after, and the change is skipped. After an item's
//!    first applied change the stream alone is authoritative for it.
//!
//! This needs a `NEW_AND_OLD_IMAGES` stream. An item that returns to an earlier identical
//! state during the scan (A → B → A) may briefly show B; it is right again at the next change
//! the stream delivers for it, and once the stream has caught up the replica equals the table.

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::types::{AttributeValue as TableValue, StreamViewType};
use aws_sdk_dynamodbstreams::types::AttributeValue;
use dynamodb_stream::{ChangeEvent, ChangeStream, Checkpoint, EventKind, Item, StartPosition};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An error with what was being done.
#[derive(Debug)]
pub(crate) struct Context(String, BoxError);

impl std::fmt::Display for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Context {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.1)
    }
}

/// What replication needs to know about a table.
#[derive(Clone, Debug)]
pub(crate) struct Table {
    pub(crate) name: String,
    pub(crate) stream_arn: String,
    /// The key attributes, partition key first.
    pub(crate) key: Vec<String>,
}

impl Table {
    /// Reads the table's key schema and latest stream, which must record old and new images.
    pub(crate) async fn describe(
        dynamodb: &aws_sdk_dynamodb::Client,
        name: &str,
    ) -> Result<Table, BoxError> {
        let described = dynamodb
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| Context(format!("cannot describe table {name}"), e.into()))?;
        let table = described.table().ok_or("DescribeTable returned no table")?;
        let stream_arn = table
            .latest_stream_arn()
            .ok_or_else(|| format!("table {name} has no stream: enable DynamoDB Streams on it"))?;
        let view = table
            .stream_specification()
            .and_then(|s| s.stream_view_type());
        if view != Some(&StreamViewType::NewAndOldImages) {
            return Err(format!("table {name}'s stream must record NEW_AND_OLD_IMAGES").into());
        }
        Ok(Table {
            name: name.to_owned(),
            stream_arn: stream_arn.to_owned(),
            key: table
                .key_schema()
                .iter()
                .map(|k| k.attribute_name().to_owned())
                .collect(),
        })
    }
}

/// The stream's current position, taken without reading anything: the checkpoint of a fresh
/// consumer started at `LATEST` already means "every record created from now on" (less a
/// two-second clock allowance, whose records the replica recognises as already applied).
pub(crate) fn bookmark(
    streams: aws_sdk_dynamodbstreams::Client,
    stream_arn: &str,
) -> Result<Checkpoint, BoxError> {
    let mut stream = ChangeStream::builder(streams, stream_arn)
        .start(StartPosition::Latest)
        .build()?;
    Ok(stream.checkpoint())
}

/// The replica: the table's items by key.
#[derive(Debug, Default)]
pub(crate) struct Replica {
    key: Vec<String>,
    items: HashMap<String, Item>,
    /// Keys whose stream changes apply unconditionally: their first change was applied.
    followed: HashSet<String>,
    /// Counts, for the curious.
    pub(crate) scanned: usize,
    pub(crate) applied: usize,
    pub(crate) skipped: usize,
}

impl Replica {
    pub(crate) fn new(table: &Table) -> Replica {
        Replica {
            key: table.key.clone(),
            ..Replica::default()
        }
    }

    /// The items, by their key (see [`Replica::key_of`]).
    pub(crate) fn items(&self) -> &HashMap<String, Item> {
        &self.items
    }

    /// Scans the whole table into the replica, `page_size` items a request.
    pub(crate) async fn scan(
        &mut self,
        dynamodb: &aws_sdk_dynamodb::Client,
        table: &str,
        page_size: i32,
    ) -> Result<(), BoxError> {
        let mut pages = dynamodb
            .scan()
            .table_name(table)
            .consistent_read(true)
            .limit(page_size)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for item in page?.items() {
                let item = from_table(item);
                self.items.insert(self.key_of(&item), item);
                self.scanned += 1;
            }
        }
        Ok(())
    }

    /// Applies one change from the stream, unless the scan already reflects it.
    pub(crate) fn apply(&mut self, event: &ChangeEvent) {
        let key = self.key_of(event.raw_keys());
        if !self.followed.contains(&key) {
            let before = event.raw_old_image().map(normalized);
            if before.as_ref() != self.items.get(&key) {
                self.skipped += 1;
                return;
            }
            self.followed.insert(key.clone());
        }
        self.applied += 1;
        match (event.kind(), event.raw_new_image()) {
            (EventKind::Remove, _) | (_, None) => {
                self.items.remove(&key);
            }
            (_, Some(image)) => {
                self.items.insert(key, normalized(image));
            }
        }
    }

    /// An item's identity: its key attributes, in schema order.
    pub(crate) fn key_of(&self, item: &Item) -> String {
        let parts: Vec<(&str, Option<&AttributeValue>)> =
            self.key.iter().map(|k| (k.as_str(), item.get(k))).collect();
        format!("{parts:?}")
    }
}

/// An item with its sets sorted: DynamoDB sets have no order, so two reads may differ in it.
pub(crate) fn normalized(item: &Item) -> Item {
    item.iter()
        .map(|(k, v)| (k.clone(), normalize(v)))
        .collect()
}

fn normalize(value: &AttributeValue) -> AttributeValue {
    let sorted = |v: &Vec<String>| {
        let mut v = v.clone();
        v.sort();
        v
    };
    match value {
        AttributeValue::Ss(v) => AttributeValue::Ss(sorted(v)),
        AttributeValue::Ns(v) => AttributeValue::Ns(sorted(v)),
        AttributeValue::Bs(v) => {
            let mut v = v.clone();
            v.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
            AttributeValue::Bs(v)
        }
        AttributeValue::M(m) => AttributeValue::M(normalized(m)),
        AttributeValue::L(l) => AttributeValue::L(l.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

/// A scanned item (the DynamoDB SDK's type) as the streams SDK's, normalized.
pub(crate) fn from_table(item: &HashMap<String, TableValue>) -> Item {
    item.iter()
        .map(|(k, v)| (k.clone(), normalize(&convert(v))))
        .collect()
}

fn convert(value: &TableValue) -> AttributeValue {
    match value {
        TableValue::S(s) => AttributeValue::S(s.clone()),
        TableValue::N(n) => AttributeValue::N(n.clone()),
        TableValue::B(b) => AttributeValue::B(b.clone()),
        TableValue::Bool(b) => AttributeValue::Bool(*b),
        TableValue::Null(b) => AttributeValue::Null(*b),
        TableValue::M(m) => {
            AttributeValue::M(m.iter().map(|(k, v)| (k.clone(), convert(v))).collect())
        }
        TableValue::L(l) => AttributeValue::L(l.iter().map(convert).collect()),
        TableValue::Ss(v) => AttributeValue::Ss(v.clone()),
        TableValue::Ns(v) => AttributeValue::Ns(v.clone()),
        TableValue::Bs(v) => AttributeValue::Bs(v.clone()),
        // A type newer than this SDK: keep the item, without that value's contents.
        _ => AttributeValue::Null(true),
    }
}
