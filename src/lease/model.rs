//! The lease table's items as plain data, the conditional writes of the protocol, and how to
//! tell from an item whether a write whose reply was lost was applied.
//!
//! One partition per consumer group and stream (`pk = <group>|<stream ARN>`), sort keys:
//! `#meta` (the group's start, a change counter), `#w#<worker>` (one per worker: its
//! incarnation, heartbeat counter and state), `#a#<owner>#<shard>` (an ask to hand a shard
//! over) and `s#<shard>` (one per shard: parent, owner, epoch, position, done).

use std::sync::Arc;

use crate::checkpoint::ShardPosition;
use crate::sequence::SequenceNumber;

/// Who holds a shard: a worker id and the incarnation (one run of one process) that joined
/// under it. A restarted process is a new incarnation: its old leases are dead.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Owner {
    pub(crate) worker: Arc<str>,
    pub(crate) inc: u64,
}

impl Owner {
    /// `<worker>#<incarnation in hex>`, as stored.
    pub(crate) fn encode(&self) -> String {
        format!("{}#{:016x}", self.worker, self.inc)
    }

    pub(crate) fn decode(text: &str) -> Option<Self> {
        let (worker, inc) = text.rsplit_once('#')?;
        Some(Self {
            worker: worker.into(),
            inc: u64::from_str_radix(inc, 16).ok()?,
        })
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.encode())
    }
}

/// Where a group that sees a stream for the first time starts: written once, in `#meta`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StartMark {
    TrimHorizon,
    /// `LATEST` at this instant (epoch seconds).
    LatestSince(i64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) start: StartMark,
    /// Bumped by every write that changes what may be taken: join, leave, evict, release,
    /// finish, transfer. Peers read shards again when it moves.
    pub(crate) generation: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WorkerState {
    Live,
    Evicted,
    Left,
}

impl WorkerState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Evicted => "evicted",
            Self::Left => "left",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "live" => Some(Self::Live),
            "evicted" => Some(Self::Evicted),
            "left" => Some(Self::Left),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WorkerItem {
    pub(crate) owner: Owner,
    /// Bumped by every heartbeat: peers watch it change.
    pub(crate) beat: u64,
    pub(crate) state: WorkerState,
}

/// `asker` asks `owner` to hand `shard` over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ask {
    pub(crate) owner: Arc<str>,
    pub(crate) shard: Arc<str>,
    pub(crate) asker: Owner,
}

/// One shard's lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ShardLease {
    pub(crate) shard: Arc<str>,
    pub(crate) parent: Option<Arc<str>>,
    pub(crate) owner: Option<Owner>,
    /// Moves only with ownership (take, release, transfer, finish): the fencing token.
    pub(crate) epoch: u64,
    /// The last saved position; `None`: from the trim horizon.
    pub(crate) pos: Option<ShardPosition>,
    /// Read to its end and saved: its children may be taken.
    pub(crate) done: bool,
    /// A `LATEST` iterator taken when the group started, for the shard's first reader.
    pub(crate) iterator: Option<String>,
}

impl ShardLease {
    /// The item of a listed shard nobody has read yet in this group, starting at `pos`.
    pub(crate) fn new(
        info: &crate::lineage::ShardInfo,
        pos: Option<ShardPosition>,
        done: bool,
    ) -> Self {
        Self {
            shard: info.id.clone(),
            parent: info.parent.clone(),
            owner: None,
            epoch: 0,
            pos,
            done,
            iterator: None,
        }
    }
}

/// The group's control items: what every heartbeat round reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Control {
    pub(crate) meta: Option<Meta>,
    pub(crate) workers: Vec<WorkerItem>,
    pub(crate) asks: Vec<Ask>,
}

/// An item as a write returns it (applied: after; refused: as it is).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Item {
    Meta(Meta),
    Worker(WorkerItem),
    Ask(Ask),
    Shard(ShardLease),
}

/// The protocol's writes. Every one is conditional; see each variant for its condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// `#meta`, if absent.
    CreateMeta(StartMark),
    /// `#meta.gen += 1`.
    BumpGen,
    /// `#w#worker`, if absent or not live.
    Join(Owner),
    /// `beat += 1`, if the item is this incarnation's and live.
    Heartbeat(Owner),
    /// `state = evicted`, if the item is still `owner`'s, live, at `beat`.
    Evict { owner: Owner, beat: u64 },
    /// `state = left`, if the item is this incarnation's.
    Leave(Owner),
    /// `s#shard`, if absent.
    CreateShard(ShardLease),
    /// `owner = me, epoch += 1`, if at `epoch`, not done, and owned by `from` (`None`: free).
    Take {
        shard: Arc<str>,
        epoch: u64,
        from: Option<Owner>,
        me: Owner,
    },
    /// `pos = after seq`, if `me` holds it at `epoch`, it is not done, and its position
    /// does not go back.
    Checkpoint {
        shard: Arc<str>,
        epoch: u64,
        me: Owner,
        seq: SequenceNumber,
    },
    /// `done, pos = finished, owner removed, epoch += 1`, if `me` holds it at `epoch`.
    Finish {
        shard: Arc<str>,
        epoch: u64,
        me: Owner,
    },
    /// `owner = to` (`None`: removed), `epoch += 1`, if `me` holds it at `epoch`.
    Transfer {
        shard: Arc<str>,
        epoch: u64,
        me: Owner,
        to: Option<Owner>,
    },
    /// `#a#owner#shard`, if absent.
    Ask(Ask),
    /// Removes an ask (unconditional).
    DropAsk { owner: Arc<str>, shard: Arc<str> },
}

/// What a write did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Applied; the item after the write (for writes that return one).
    Applied(Option<Item>),
    /// The condition failed; the item as it is (`None`: there is none).
    Refused(Option<Item>),
}

impl Op {
    /// The operation's name, for logs and counts.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Op::CreateMeta(_) => "CreateMeta",
            Op::BumpGen => "BumpGen",
            Op::Join(_) => "Join",
            Op::Heartbeat(_) => "Heartbeat",
            Op::Evict { .. } => "Evict",
            Op::Leave(_) => "Leave",
            Op::CreateShard(_) => "CreateShard",
            Op::Take { .. } => "Take",
            Op::Checkpoint { .. } => "Checkpoint",
            Op::Finish { .. } => "Finish",
            Op::Transfer { .. } => "Transfer",
            Op::Ask(_) => "Ask",
            Op::DropAsk { .. } => "DropAsk",
        }
    }

    /// Whether `current`, the item as a refused retry found it, shows this write applied by
    /// an earlier attempt whose reply was lost.
    pub(crate) fn applied_in(&self, current: Option<&Item>) -> bool {
        match (self, current) {
            (Op::Join(me), Some(Item::Worker(w))) => w.owner == *me && w.state == WorkerState::Live,
            (Op::Leave(me), Some(Item::Worker(w))) => {
                w.owner == *me && w.state == WorkerState::Left
            }
            // Evicted by this call (its reply lost) or by a peer's: either way its shards are
            // free now, and the evicter must read them again at once.
            (Op::Evict { owner, .. }, Some(Item::Worker(w))) => {
                w.owner == *owner && w.state == WorkerState::Evicted
            }
            (Op::Take { epoch, me, .. }, Some(Item::Shard(s))) => {
                s.epoch == epoch + 1 && s.owner.as_ref() == Some(me)
            }
            (Op::Checkpoint { epoch, me, seq, .. }, Some(Item::Shard(s))) => {
                s.epoch == *epoch
                    && s.owner.as_ref() == Some(me)
                    && matches!(&s.pos, Some(ShardPosition::After(at)) if at >= seq)
            }
            (Op::Finish { epoch, .. }, Some(Item::Shard(s))) => s.done && s.epoch == epoch + 1,
            (Op::Transfer { epoch, to, .. }, Some(Item::Shard(s))) => {
                s.epoch == epoch + 1 && s.owner == *to
            }
            (Op::CreateMeta(_) | Op::CreateShard(_) | Op::Ask(_), Some(_)) => true,
            _ => false,
        }
    }
}

/// Whether saving `to` over `from` would move a shard's position back.
pub(crate) fn goes_back(from: &ShardPosition, to: &ShardPosition) -> bool {
    match (from, to) {
        (ShardPosition::Finished, ShardPosition::Finished) => false,
        (ShardPosition::Finished, _) => true,
        (ShardPosition::After(a), ShardPosition::After(b)) => b < a,
        (ShardPosition::After(_), ShardPosition::LatestSince(_)) => true,
        _ => false,
    }
}

/// Whether `saved` (the position the table holds; `None`: none saved by this holder) covers
/// `delivered` (the last position delivered; `None`: nothing delivered).
pub(crate) fn covers(saved: Option<&ShardPosition>, delivered: Option<&ShardPosition>) -> bool {
    match (saved, delivered) {
        (_, None) => true,
        (Some(saved), Some(delivered)) => !goes_back(delivered, saved),
        // Nothing saved: only a position that delivered nothing is covered.
        (None, Some(delivered)) => matches!(delivered, ShardPosition::LatestSince(_)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(n: u64) -> ShardPosition {
        ShardPosition::After(SequenceNumber::new(&format!("{n:021}")).unwrap())
    }

    #[test]
    fn owners_round_trip_even_with_hashes_in_the_worker_id() {
        let owner = Owner {
            worker: "pod#7".into(),
            inc: 0xdead_beef,
        };
        assert_eq!(Owner::decode(&owner.encode()), Some(owner));
        assert_eq!(Owner::decode("no-incarnation"), None);
    }

    #[test]
    fn positions_never_go_back() {
        assert!(goes_back(&after(5), &after(4)));
        assert!(!goes_back(&after(5), &after(5)));
        assert!(!goes_back(&after(5), &ShardPosition::Finished));
        assert!(goes_back(&ShardPosition::Finished, &after(9)));
    }

    #[test]
    fn a_save_covers_what_was_delivered_only_when_it_reaches_it() {
        assert!(covers(Some(&after(5)), Some(&after(5))));
        assert!(covers(Some(&after(6)), Some(&after(5))));
        assert!(
            !covers(Some(&after(4)), Some(&after(5))),
            "saved behind delivered"
        );
        assert!(covers(None, None));
        assert!(!covers(None, Some(&after(1))));
        assert!(covers(Some(&ShardPosition::Finished), Some(&after(9))));
        assert!(!covers(Some(&after(9)), Some(&ShardPosition::Finished)));
    }

    #[test]
    fn a_lost_reply_is_recognised_from_the_item() {
        let me = Owner {
            worker: "a".into(),
            inc: 1,
        };
        let shard = |owner: Option<Owner>, epoch| {
            Item::Shard(ShardLease {
                shard: "s".into(),
                parent: None,
                owner,
                epoch,
                pos: None,
                done: false,
                iterator: None,
            })
        };
        let take = Op::Take {
            shard: "s".into(),
            epoch: 3,
            from: None,
            me: me.clone(),
        };
        assert!(take.applied_in(Some(&shard(Some(me.clone()), 4))));
        let other = Owner {
            worker: "b".into(),
            inc: 2,
        };
        assert!(!take.applied_in(Some(&shard(Some(other), 4))));
        assert!(!take.applied_in(Some(&shard(None, 3))));
        assert!(!take.applied_in(None));
    }

    #[test]
    fn an_eviction_is_recognised_whoever_made_it() {
        let silent = Owner {
            worker: "a".into(),
            inc: 1,
        };
        let evict = Op::Evict {
            owner: silent.clone(),
            beat: 7,
        };
        let worker = |owner: &Owner, state| {
            Item::Worker(WorkerItem {
                owner: owner.clone(),
                beat: 7,
                state,
            })
        };
        assert!(evict.applied_in(Some(&worker(&silent, WorkerState::Evicted))));
        assert!(
            !evict.applied_in(Some(&worker(&silent, WorkerState::Live))),
            "its heartbeat came first"
        );
        let rejoined = Owner {
            worker: "a".into(),
            inc: 2,
        };
        assert!(
            !evict.applied_in(Some(&worker(&rejoined, WorkerState::Evicted))),
            "another incarnation"
        );
    }
}
