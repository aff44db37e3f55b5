//! Lease items as DynamoDB attribute maps: the shared encodings, and reading items back.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::checkpoint::ShardPosition;
use crate::config::{at_epoch_secs, epoch_secs};
use crate::error::{Error, ErrorKind, Result};
use crate::lease::model::{Ask, Item, Meta, Owner, ShardLease, StartMark, WorkerItem, WorkerState};
use crate::sequence::SequenceNumber;

pub(crate) type Attrs = HashMap<String, AttributeValue>;

pub(super) fn s(text: impl Into<String>) -> AttributeValue {
    AttributeValue::S(text.into())
}

pub(super) fn n(number: impl ToString) -> AttributeValue {
    AttributeValue::N(number.to_string())
}

pub(super) fn key(pk: &str, sk: String) -> Attrs {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

pub(super) fn shard_sk(shard: &str) -> String {
    format!("s#{shard}")
}

/// Sequence numbers zero-padded to 64 digits: their text order is their numeric order, so a
/// condition can refuse a save that would move a shard back.
pub(super) fn padded(seq: &SequenceNumber) -> String {
    format!("{:0>64}", seq.as_str())
}

pub(super) fn encode_pos(pos: Option<&ShardPosition>) -> String {
    match pos {
        None => "h".into(),
        Some(ShardPosition::After(seq)) => format!("s{seq}"),
        Some(ShardPosition::LatestSince(t)) => format!("t{}", epoch_secs(*t)),
        Some(ShardPosition::Finished) => "f".into(),
    }
}

fn decode_pos(text: &str) -> Option<Option<ShardPosition>> {
    let (tag, rest) = text.split_at_checked(1)?;
    Some(match tag {
        "h" => None,
        "f" => Some(ShardPosition::Finished),
        "s" => Some(ShardPosition::After(SequenceNumber::new(rest).ok()?)),
        "t" => Some(ShardPosition::LatestSince(at_epoch_secs(
            rest.parse().ok()?,
        ))),
        _ => return None,
    })
}

pub(super) fn shard_attrs(lease: &ShardLease) -> Attrs {
    let mut item = HashMap::from([
        ("shard".to_owned(), s(&*lease.shard)),
        ("epoch".to_owned(), n(lease.epoch)),
        ("pos".to_owned(), s(encode_pos(lease.pos.as_ref()))),
        ("done".to_owned(), AttributeValue::Bool(lease.done)),
    ]);
    if let Some(parent) = &lease.parent {
        item.insert("parent".into(), s(&**parent));
    }
    if let Some(owner) = &lease.owner {
        item.insert("owner".into(), s(owner.encode()));
    }
    if let Some(ShardPosition::After(seq)) = &lease.pos {
        item.insert("seq".into(), s(padded(seq)));
    }
    if let Some(iterator) = &lease.iterator {
        item.insert("iterator".into(), s(iterator));
    }
    item
}

/// An item's attributes, read one by one; a missing or malformed one is an error naming the
/// item: the table holds something this crate did not write.
struct Reader<'a> {
    attrs: &'a Attrs,
    sk: &'a str,
}

impl<'a> Reader<'a> {
    fn bad(&self) -> Error {
        Error::new(
            ErrorKind::Store,
            format!("item {:?} is not a lease item of this crate", self.sk),
        )
    }

    fn text(&self, name: &str) -> Option<&'a str> {
        let value = self.attrs.get(name)?;
        value.as_s().ok().map(String::as_str)
    }

    fn required(&self, name: &str) -> Result<&'a str> {
        self.text(name).ok_or_else(|| self.bad())
    }

    fn number(&self, name: &str) -> Result<u64> {
        let value = self.attrs.get(name).and_then(|v| v.as_n().ok());
        value.and_then(|v| v.parse().ok()).ok_or_else(|| self.bad())
    }

    fn owner(&self, name: &str) -> Result<Option<Owner>> {
        self.text(name)
            .map(|t| Owner::decode(t).ok_or_else(|| self.bad()))
            .transpose()
    }

    fn meta(&self) -> Result<Item> {
        let start = match self.required("start")? {
            "h" => StartMark::TrimHorizon,
            t => StartMark::LatestSince(
                t.strip_prefix('t')
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(|| self.bad())?,
            ),
        };
        let generation = self.number("generation")?;
        Ok(Item::Meta(Meta { start, generation }))
    }

    fn worker(&self) -> Result<Item> {
        Ok(Item::Worker(WorkerItem {
            owner: self.owner("owner")?.ok_or_else(|| self.bad())?,
            beat: self.number("beat")?,
            state: WorkerState::parse(self.required("state")?).ok_or_else(|| self.bad())?,
        }))
    }

    fn ask(&self) -> Result<Item> {
        Ok(Item::Ask(Ask {
            owner: Arc::from(self.required("owner")?),
            shard: Arc::from(self.required("shard")?),
            asker: self.owner("asker")?.ok_or_else(|| self.bad())?,
        }))
    }

    fn shard(&self) -> Result<Item> {
        let done = self.attrs.get("done").and_then(|v| v.as_bool().ok());
        Ok(Item::Shard(ShardLease {
            shard: Arc::from(self.required("shard")?),
            parent: self.text("parent").map(Arc::from),
            owner: self.owner("owner")?,
            epoch: self.number("epoch")?,
            pos: decode_pos(self.text("pos").unwrap_or("h")).ok_or_else(|| self.bad())?,
            done: done.copied().unwrap_or(false),
            iterator: self.text("iterator").map(str::to_owned),
        }))
    }
}

/// Reads an item back, by the kind its sort key names.
pub(crate) fn parse_item(attrs: &Attrs) -> Result<Item> {
    let sk = attrs
        .get("sk")
        .and_then(|v| v.as_s().ok())
        .map_or("", String::as_str);
    let reader = Reader { attrs, sk };
    match sk {
        "#meta" => reader.meta(),
        _ if sk.starts_with("#w#") => reader.worker(),
        _ if sk.starts_with("#a#") => reader.ask(),
        _ if sk.starts_with("s#") => reader.shard(),
        _ => Err(reader.bad()),
    }
}

pub(crate) fn shard_item(item: Item) -> Option<ShardLease> {
    match item {
        Item::Shard(s) => Some(s),
        _ => None,
    }
}
