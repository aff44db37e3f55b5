//! Lease items as DynamoDB attribute maps, and each protocol write as a request: its key, its
//! update (or whole item), its condition, and only the names and values these use (DynamoDB
//! refuses unused ones).

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::checkpoint::ShardPosition;
use crate::config::{at_epoch_secs, epoch_secs};
use crate::error::{Error, ErrorKind, Result};
use crate::lease::model::{
    Ask, Item, Meta, Op, Owner, ShardLease, StartMark, WorkerItem, WorkerState,
};
use crate::sequence::SequenceNumber;

pub(crate) type Attrs = HashMap<String, AttributeValue>;

/// One request.
pub(crate) struct Write {
    pub(crate) key: Attrs,
    /// A `PutItem` of this whole item (`None`: an update or a delete).
    pub(crate) put: Option<Attrs>,
    pub(crate) delete: bool,
    pub(crate) update: String,
    pub(crate) condition: String,
    pub(crate) names: Option<HashMap<String, String>>,
    pub(crate) values: Option<Attrs>,
}

fn s(text: impl Into<String>) -> AttributeValue {
    AttributeValue::S(text.into())
}

fn n(number: impl ToString) -> AttributeValue {
    AttributeValue::N(number.to_string())
}

fn key(pk: &str, sk: String) -> Attrs {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

fn shard_sk(shard: &str) -> String {
    format!("s#{shard}")
}

/// Sequence numbers zero-padded to 64 digits: their text order is their numeric order, so a
/// condition can refuse a save that would move a shard back.
fn padded(seq: &SequenceNumber) -> String {
    format!("{:0>64}", seq.as_str())
}

fn encode_pos(pos: Option<&ShardPosition>) -> String {
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

/// Builds a request: the expression parts and the names and values they use.
struct Builder {
    w: Write,
}

impl Builder {
    fn new(key: Attrs) -> Self {
        Self {
            w: Write {
                key,
                put: None,
                delete: false,
                update: String::new(),
                condition: String::new(),
                names: None,
                values: None,
            },
        }
    }

    fn put(key: Attrs, mut item: Attrs, condition: &str) -> Write {
        item.extend(key.clone());
        let mut b = Self::new(key);
        b.w.put = Some(item);
        b.w.condition = condition.into();
        b.w
    }

    fn update(mut self, update: &str, condition: &str) -> Self {
        self.w.update = update.into();
        self.w.condition = condition.into();
        self
    }

    fn name(mut self, placeholder: &str, attribute: &str) -> Self {
        self.w
            .names
            .get_or_insert_with(HashMap::new)
            .insert(placeholder.into(), attribute.into());
        self
    }

    fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.w
            .values
            .get_or_insert_with(HashMap::new)
            .insert(placeholder.into(), value);
        self
    }
}

/// The request for `op` on partition `pk`; `expires` stamps items that are done with.
pub(crate) fn write_of(pk: &str, op: &Op, expires: i64) -> Write {
    match op {
        Op::CreateMeta(start) => {
            let start = match start {
                StartMark::TrimHorizon => "h".to_owned(),
                StartMark::LatestSince(t) => format!("t{t}"),
            };
            let item = HashMap::from([("start".into(), s(start)), ("generation".into(), n(0))]);
            Builder::put(key(pk, "#meta".into()), item, "attribute_not_exists(pk)")
        }
        Op::BumpGen => {
            Builder::new(key(pk, "#meta".into()))
                .update("ADD #g :one", "attribute_exists(pk)")
                .name("#g", "generation")
                .value(":one", n(1))
                .w
        }
        Op::Join(owner) => {
            let item = HashMap::from([
                ("worker".into(), s(&*owner.worker)),
                ("owner".into(), s(owner.encode())),
                ("beat".into(), n(0)),
                ("state".into(), s(WorkerState::Live.as_str())),
            ]);
            let mut w = Builder::put(
                key(pk, format!("#w#{}", owner.worker)),
                item,
                "attribute_not_exists(pk) OR #s <> :live",
            );
            w.names = Some(HashMap::from([("#s".into(), "state".into())]));
            w.values = Some(HashMap::from([(":live".into(), s("live"))]));
            w
        }
        Op::Heartbeat(owner) => {
            worker_update(pk, owner)
                .update("ADD #b :one", "#o = :me AND #s = :live")
                .name("#b", "beat")
                .name("#s", "state")
                .value(":one", n(1))
                .value(":live", s("live"))
                .w
        }
        Op::Evict { owner, beat } => {
            worker_update(pk, owner)
                .update(
                    "SET #s = :evicted, #x = :exp",
                    "#o = :me AND #b = :beat AND #s = :live",
                )
                .name("#s", "state")
                .name("#x", "expires_at")
                .name("#b", "beat")
                .value(":evicted", s("evicted"))
                .value(":exp", n(expires))
                .value(":beat", n(*beat))
                .value(":live", s("live"))
                .w
        }
        Op::Leave(owner) => {
            worker_update(pk, owner)
                .update("SET #s = :left, #x = :exp", "#o = :me")
                .name("#s", "state")
                .name("#x", "expires_at")
                .value(":left", s("left"))
                .value(":exp", n(expires))
                .w
        }
        Op::CreateShard(lease) => Builder::put(
            key(pk, shard_sk(&lease.shard)),
            shard_attrs(lease),
            "attribute_not_exists(pk)",
        ),
        Op::Ask(ask) => {
            let item = HashMap::from([
                ("owner".into(), s(&*ask.owner)),
                ("shard".into(), s(&*ask.shard)),
                ("asker".into(), s(ask.asker.encode())),
                ("expires_at".into(), n(expires)),
            ]);
            Builder::put(
                key(pk, format!("#a#{}#{}", ask.owner, ask.shard)),
                item,
                "attribute_not_exists(pk)",
            )
        }
        Op::DropAsk { owner, shard } => {
            let mut b = Builder::new(key(pk, format!("#a#{owner}#{shard}")));
            b.w.delete = true;
            b.w
        }
        _ => shard_write(pk, op, expires),
    }
}

fn worker_update(pk: &str, owner: &Owner) -> Builder {
    Builder::new(key(pk, format!("#w#{}", owner.worker)))
        .name("#o", "owner")
        .value(":me", s(owner.encode()))
}

/// The fenced writes to a shard item.
fn shard_write(pk: &str, op: &Op, expires: i64) -> Write {
    let (shard, epoch) = match op {
        Op::Take { shard, epoch, .. }
        | Op::Checkpoint { shard, epoch, .. }
        | Op::Finish { shard, epoch, .. }
        | Op::Transfer { shard, epoch, .. } => (shard, *epoch),
        _ => unreachable_write(),
    };
    let b = Builder::new(key(pk, shard_sk(shard)))
        .name("#e", "epoch")
        .value(":e", n(epoch));
    let held = |b: Builder, me: &Owner| b.name("#o", "owner").value(":me", s(me.encode()));
    match op {
        Op::Take { from, me, .. } => {
            let b = held(b, me)
                .name("#d", "done")
                .value(":false", AttributeValue::Bool(false));
            let b = b.value(":one", n(1));
            match from {
                None => b.update(
                    "SET #o = :me ADD #e :one",
                    "#e = :e AND #d = :false AND attribute_not_exists(#o)",
                ),
                Some(from) => b.value(":from", s(from.encode())).update(
                    "SET #o = :me ADD #e :one",
                    "#e = :e AND #d = :false AND #o = :from",
                ),
            }
            .w
        }
        Op::Checkpoint { me, seq, .. } => held(b, me)
            .name("#d", "done")
            .name("#p", "pos")
            .name("#q", "seq")
            .value(":false", AttributeValue::Bool(false))
            .value(":p", s(format!("s{seq}")))
            .value(":q", s(padded(seq)))
            .update(
                "SET #p = :p, #q = :q",
                "#o = :me AND #e = :e AND #d = :false AND (attribute_not_exists(#q) OR #q <= :q)",
            )
            .w,
        Op::Finish { me, .. } => {
            held(b, me)
                .name("#d", "done")
                .name("#p", "pos")
                .name("#x", "expires_at")
                .value(":true", AttributeValue::Bool(true))
                .value(":f", s("f"))
                .value(":exp", n(expires))
                .value(":one", n(1))
                .update(
                    "SET #p = :f, #d = :true, #x = :exp REMOVE #o ADD #e :one",
                    "#o = :me AND #e = :e",
                )
                .w
        }
        Op::Transfer { me, to, .. } => {
            let b = held(b, me).value(":one", n(1));
            match to {
                Some(to) => b
                    .value(":to", s(to.encode()))
                    .update("SET #o = :to ADD #e :one", "#o = :me AND #e = :e"),
                None => b.update("REMOVE #o ADD #e :one", "#o = :me AND #e = :e"),
            }
            .w
        }
        _ => unreachable_write(),
    }
}

/// `write_of` sends only shard writes here.
fn unreachable_write() -> ! {
    unreachable!("not a shard write")
}

fn shard_attrs(lease: &ShardLease) -> Attrs {
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

/// Reads an item back. One that does not parse is an error: the table holds something
/// this crate did not write.
pub(crate) fn parse_item(attrs: &Attrs) -> Result<Item> {
    let text = |name: &str| {
        attrs
            .get(name)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
    };
    let number = |name: &str| {
        attrs
            .get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<u64>().ok())
    };
    let sk = text("sk").unwrap_or_default();
    let bad = || {
        Error::new(
            ErrorKind::Store,
            format!("item {sk:?} is not a lease item of this crate"),
        )
    };
    let owner = |name: &str| {
        text(name)
            .map(|t| Owner::decode(t).ok_or_else(bad))
            .transpose()
    };
    if sk == "#meta" {
        let start = match text("start").ok_or_else(bad)? {
            "h" => StartMark::TrimHorizon,
            t => StartMark::LatestSince(
                t.strip_prefix('t')
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(bad)?,
            ),
        };
        let generation = number("generation").ok_or_else(bad)?;
        return Ok(Item::Meta(Meta { start, generation }));
    }
    if sk.starts_with("#w#") {
        return Ok(Item::Worker(WorkerItem {
            owner: owner("owner")?.ok_or_else(bad)?,
            beat: number("beat").ok_or_else(bad)?,
            state: text("state").and_then(WorkerState::parse).ok_or_else(bad)?,
        }));
    }
    if sk.starts_with("#a#") {
        return Ok(Item::Ask(Ask {
            owner: Arc::from(text("owner").ok_or_else(bad)?),
            shard: Arc::from(text("shard").ok_or_else(bad)?),
            asker: owner("asker")?.ok_or_else(bad)?,
        }));
    }
    if sk.starts_with("s#") {
        return Ok(Item::Shard(ShardLease {
            shard: Arc::from(text("shard").ok_or_else(bad)?),
            parent: text("parent").map(Arc::from),
            owner: owner("owner")?,
            epoch: number("epoch").ok_or_else(bad)?,
            pos: decode_pos(text("pos").unwrap_or("h")).ok_or_else(bad)?,
            done: attrs
                .get("done")
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(false),
            iterator: text("iterator").map(str::to_owned),
        }));
    }
    Err(bad())
}

pub(crate) fn shard_item(item: Item) -> Option<ShardLease> {
    match item {
        Item::Shard(s) => Some(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_items_round_trip() {
        let lease = ShardLease {
            shard: "shardId-1".into(),
            parent: Some("shardId-0".into()),
            owner: Some(Owner {
                worker: "w".into(),
                inc: 9,
            }),
            epoch: 4,
            pos: Some(ShardPosition::After(
                SequenceNumber::new("123456789012345678901").unwrap(),
            )),
            done: false,
            iterator: Some("it".into()),
        };
        let mut attrs = shard_attrs(&lease);
        attrs.extend(key("pk", shard_sk(&lease.shard)));
        assert_eq!(parse_item(&attrs).unwrap(), Item::Shard(lease));
        assert_eq!(padded(&SequenceNumber::new("42").unwrap()).len(), 64);
    }

    #[test]
    fn every_write_uses_exactly_the_names_and_values_it_defines() {
        let me = Owner {
            worker: "w".into(),
            inc: 1,
        };
        let seq = SequenceNumber::new("123456789012345678901").unwrap();
        let ops = [
            Op::BumpGen,
            Op::Heartbeat(me.clone()),
            Op::Evict {
                owner: me.clone(),
                beat: 3,
            },
            Op::Leave(me.clone()),
            Op::Take {
                shard: "s".into(),
                epoch: 1,
                from: None,
                me: me.clone(),
            },
            Op::Take {
                shard: "s".into(),
                epoch: 1,
                from: Some(me.clone()),
                me: me.clone(),
            },
            Op::Checkpoint {
                shard: "s".into(),
                epoch: 1,
                me: me.clone(),
                seq: seq.clone(),
            },
            Op::Finish {
                shard: "s".into(),
                epoch: 1,
                me: me.clone(),
            },
            Op::Transfer {
                shard: "s".into(),
                epoch: 1,
                me: me.clone(),
                to: None,
            },
            Op::Transfer {
                shard: "s".into(),
                epoch: 1,
                me: me.clone(),
                to: Some(me.clone()),
            },
            Op::Join(me),
        ];
        for op in ops {
            let w = write_of("pk", &op, 0);
            let text = format!("{} {}", w.update, w.condition);
            for name in w.names.iter().flatten().map(|(k, _)| k) {
                assert!(text.contains(name.as_str()), "{op:?}: {name} unused");
            }
            for value in w.values.iter().flatten().map(|(k, _)| k) {
                assert!(text.contains(value.as_str()), "{op:?}: {value} unused");
            }
        }
    }
}
