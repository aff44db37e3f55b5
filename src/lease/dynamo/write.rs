//! Each protocol write as a DynamoDB request: its key, its update (or whole item), its
//! condition, and only the names and values these use (DynamoDB refuses unused ones).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::items::{Attrs, key, n, padded, s, shard_attrs, shard_sk};
use crate::lease::model::{Ask, Op, Owner, StartMark, WorkerState};
use crate::sequence::SequenceNumber;

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
        Op::CreateMeta(start) => create_meta(pk, *start),
        Op::BumpGen => {
            Builder::new(key(pk, "#meta".into()))
                .update("ADD #g :one", "attribute_exists(pk)")
                .name("#g", "generation")
                .value(":one", n(1))
                .w
        }
        Op::Join(owner) => join(pk, owner),
        Op::Heartbeat(owner) => {
            worker_update(pk, owner)
                .update("ADD #b :one", "#o = :me AND #s = :live")
                .name("#b", "beat")
                .name("#s", "state")
                .value(":one", n(1))
                .value(":live", s("live"))
                .w
        }
        Op::Evict { owner, beat } => evict(pk, owner, *beat, expires),
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
        Op::Ask(ask) => ask_item(pk, ask, expires),
        Op::DropAsk { owner, shard } => {
            let mut b = Builder::new(key(pk, format!("#a#{owner}#{shard}")));
            b.w.delete = true;
            b.w
        }
        Op::Take {
            shard,
            epoch,
            from,
            me,
        } => take(held(pk, shard, *epoch, me), from.as_ref()),
        Op::Checkpoint {
            shard,
            epoch,
            me,
            seq,
        } => checkpoint(held(pk, shard, *epoch, me), seq),
        Op::Finish { shard, epoch, me } => finish(held(pk, shard, *epoch, me), expires),
        Op::Transfer {
            shard,
            epoch,
            me,
            to,
        } => transfer(held(pk, shard, *epoch, me), to.as_ref()),
    }
}

fn create_meta(pk: &str, start: StartMark) -> Write {
    let start = match start {
        StartMark::TrimHorizon => "h".to_owned(),
        StartMark::LatestSince(t) => format!("t{t}"),
    };
    let item = HashMap::from([("start".into(), s(start)), ("generation".into(), n(0))]);
    Builder::put(key(pk, "#meta".into()), item, "attribute_not_exists(pk)")
}

fn join(pk: &str, owner: &Owner) -> Write {
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

fn evict(pk: &str, owner: &Owner, beat: u64, expires: i64) -> Write {
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
        .value(":beat", n(beat))
        .value(":live", s("live"))
        .w
}

fn ask_item(pk: &str, ask: &Ask, expires: i64) -> Write {
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

fn worker_update(pk: &str, owner: &Owner) -> Builder {
    Builder::new(key(pk, format!("#w#{}", owner.worker)))
        .name("#o", "owner")
        .value(":me", s(owner.encode()))
}

/// A write to a shard item, with the names and values of its fence (holder and epoch).
fn held(pk: &str, shard: &str, epoch: u64, me: &Owner) -> Builder {
    Builder::new(key(pk, shard_sk(shard)))
        .name("#e", "epoch")
        .value(":e", n(epoch))
        .name("#o", "owner")
        .value(":me", s(me.encode()))
}

fn take(b: Builder, from: Option<&Owner>) -> Write {
    let b = b
        .name("#d", "done")
        .value(":false", AttributeValue::Bool(false))
        .value(":one", n(1));
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

fn checkpoint(b: Builder, seq: &SequenceNumber) -> Write {
    b.name("#d", "done")
        .name("#p", "pos")
        .name("#q", "seq")
        .value(":false", AttributeValue::Bool(false))
        .value(":p", s(format!("s{seq}")))
        .value(":q", s(padded(seq)))
        .update(
            "SET #p = :p, #q = :q",
            "#o = :me AND #e = :e AND #d = :false AND (attribute_not_exists(#q) OR #q <= :q)",
        )
        .w
}

fn finish(b: Builder, expires: i64) -> Write {
    b.name("#d", "done")
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

fn transfer(b: Builder, to: Option<&Owner>) -> Write {
    let b = b.value(":one", n(1));
    match to {
        Some(to) => b
            .value(":to", s(to.encode()))
            .update("SET #o = :to ADD #e :one", "#o = :me AND #e = :e"),
        None => b.update("REMOVE #o ADD #e :one", "#o = :me AND #e = :e"),
    }
    .w
}

#[cfg(test)]
mod tests {
    use super::super::items::parse_item;
    use super::*;
    use crate::checkpoint::ShardPosition;
    use crate::lease::model::{Item, ShardLease};

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
