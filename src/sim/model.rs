//! The stream's state: its shards, how keys are routed to them, the listing order, the table.
//!
//! Pure and synchronous: time comes in as an argument, so the lock around it is held only
//! for in-memory bookkeeping.

use super::Item;
use super::hash::{hash_bytes, mix};
use super::json::{EncodedChange, RecordContext, render_record};
use super::seq::{Seq, SeqGen, SequenceNumbers};
use super::shard::Shard;
use super::table::{KeyParts, NewItem};
use super::types::{
    Appended, CallCounts, Fault, Operation, RecordKind, SimError, SimErrorKind, SimShard,
};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The listing order: a deterministic shuffle (or 0 when disabled), then the id, whose
/// zero-padded creation number makes the unshuffled order chronological.
pub(crate) type ListKey = (u64, Arc<str>);

/// Settings fixed at build time, except `max_page`.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) iterator_ttl: Duration,
    pub(crate) max_page: usize,
    pub(crate) describe_rate_limit: bool,
    pub(crate) shuffle_listing: bool,
    pub(crate) trailing_empty_listing_page: bool,
    pub(crate) sequence_numbers: SequenceNumbers,
    pub(crate) seed: u64,
}

/// A fault scripted by `inject`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Injected {
    pub(crate) op: Operation,
    pub(crate) fault: Fault,
    pub(crate) left: u32,
}

#[derive(Debug)]
struct StoredItem {
    item: Item,
    json: Bytes,
    size: u64,
}

#[derive(Debug)]
pub(crate) struct Model {
    pub(crate) settings: Settings,
    pub(crate) seqs: SeqGen,
    pub(crate) shards: Vec<Shard>,
    by_id: HashMap<Arc<str>, usize>,
    /// Open shards with a hash range, by range start; the ranges never overlap.
    routing: BTreeMap<u64, usize>,
    pub(crate) listing: BTreeMap<ListKey, usize>,
    table: HashMap<Bytes, StoredItem>,
    rng: fastrand::Rng,
    id_base_ms: u64,
    ctx: RecordContext,
    event_salt: u64,
    pub(crate) epoch: Instant,
    pub(crate) deleted: bool,
    pub(crate) faults: VecDeque<Injected>,
    pub(crate) counts: CallCounts,
    pub(crate) describe_calls: VecDeque<Instant>,
}

impl Model {
    pub(crate) fn new(settings: Settings, ctx: RecordContext, sim: u64, id_base_ms: u64) -> Model {
        Model {
            seqs: SeqGen::new(settings.sequence_numbers, settings.seed),
            // Shard-id suffixes differ between simulators even with the same seed.
            rng: fastrand::Rng::with_seed(mix(settings.seed ^ mix(sim))),
            settings,
            shards: Vec::new(),
            by_id: HashMap::new(),
            routing: BTreeMap::new(),
            listing: BTreeMap::new(),
            table: HashMap::new(),
            id_base_ms,
            ctx,
            event_salt: mix(sim),
            epoch: Instant::now(),
            deleted: false,
            faults: VecDeque::new(),
            counts: CallCounts::default(),
            describe_calls: VecDeque::new(),
        }
    }

    pub(crate) fn list_key(&self, id: &str) -> ListKey {
        let order = if self.settings.shuffle_listing {
            hash_bytes(id.as_bytes())
        } else {
            0
        };
        (order, Arc::from(id))
    }

    pub(crate) fn index(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    fn new_shard(
        &mut self,
        parent: Option<Arc<str>>,
        range: Option<(u64, u64)>,
        visible_at: Option<Instant>,
    ) -> usize {
        let idx = self.shards.len();
        let id: Arc<str> = Arc::from(format!(
            "shardId-{:020}-{:08x}",
            self.id_base_ms + idx as u64,
            self.rng.u32(..)
        ));
        if let Some((lo, _)) = range {
            self.routing.insert(lo, idx);
        }
        self.listing.insert(self.list_key(&id), idx);
        self.by_id.insert(id.clone(), idx);
        self.shards.push(Shard::new(id, parent, range, visible_at));
        idx
    }

    /// Opens `n` root shards dividing the whole key space evenly (the initial shards).
    pub(crate) fn create_roots(&mut self, n: usize) {
        for range in divide((0, u64::MAX), n) {
            self.new_shard(None, range, None);
        }
    }

    /// Opens a root shard: it covers the widest part of the key space no open shard covers,
    /// or else takes over the upper half of the widest open shard's range.
    pub(crate) fn create_shard(&mut self) -> usize {
        if let Some(gap) = self.gaps().into_iter().max_by_key(|&(lo, hi)| hi - lo) {
            return self.new_shard(None, Some(gap), None);
        }
        let widest = self
            .routing
            .values()
            .filter_map(|&i| self.shards[i].range.map(|r| (i, r)))
            .max_by_key(|&(_, (lo, hi))| hi - lo);
        match widest {
            Some((i, (lo, hi))) if lo < hi => {
                let mid = lo + (hi - lo) / 2;
                self.shards[i].range = Some((lo, mid));
                self.new_shard(None, Some((mid + 1, hi)), None)
            }
            _ => self.new_shard(None, None, None),
        }
    }

    /// Parts of the key space that no open shard covers.
    fn gaps(&self) -> Vec<(u64, u64)> {
        let mut gaps = Vec::new();
        let mut cursor: u128 = 0;
        for &i in self.routing.values() {
            if let Some((lo, hi)) = self.shards[i].range {
                if u128::from(lo) > cursor {
                    gaps.push((cursor as u64, lo - 1));
                }
                cursor = u128::from(hi) + 1;
            }
        }
        if cursor <= u128::from(u64::MAX) {
            gaps.push((cursor as u64, u64::MAX));
        }
        gaps
    }

    /// The open shard for key hash `h`; a new root covers the gap if none does.
    fn route(&mut self, h: u64) -> usize {
        if let Some((_, &i)) = self.routing.range(..=h).next_back()
            && self.shards[i].range.is_some_and(|(_, hi)| h <= hi)
        {
            return i;
        }
        let lo = self
            .routing
            .range(..=h)
            .next_back()
            .and_then(|(_, &i)| self.shards[i].range)
            .map_or(0, |(_, hi)| hi + 1);
        let hi = self
            .routing
            .range(h..)
            .next()
            .map_or(u64::MAX, |(&start, _)| start.saturating_sub(1));
        self.new_shard(None, Some((lo, hi)), None)
    }

    fn stop_routing(&mut self, idx: usize) {
        if let Some((lo, _)) = self.shards[idx].range
            && self.routing.get(&lo) == Some(&idx)
        {
            self.routing.remove(&lo);
        }
    }

    /// Closes `idx` and opens `n` children dividing its key range. `None` if it was closed.
    pub(crate) fn split(
        &mut self,
        idx: usize,
        n: usize,
        visible_at: Option<Instant>,
    ) -> Option<Vec<usize>> {
        if !self.shards[idx].open {
            return None;
        }
        self.close(idx);
        let parent = Some(self.shards[idx].id.clone());
        let ranges = match self.shards[idx].range {
            Some(r) => divide(r, n),
            None => vec![None; n],
        };
        let children: Vec<usize> = ranges
            .into_iter()
            .map(|r| self.new_shard(parent.clone(), r, visible_at))
            .collect();
        self.shards[idx].children.extend(&children);
        Some(children)
    }

    pub(crate) fn close(&mut self, idx: usize) {
        self.stop_routing(idx);
        self.shards[idx].close(&mut self.seqs);
    }

    /// Past retention: closed, every record trimmed, no longer listed.
    pub(crate) fn age_out(&mut self, idx: usize) {
        self.close(idx);
        self.shards[idx].trim_all();
        self.shards[idx].aged_out = true;
        let key = self.list_key(&self.shards[idx].id);
        self.listing.remove(&key);
    }

    /// Puts an item: `INSERT`, or `MODIFY` (with the old image) if the key was present,
    /// appended to the open shard owning the partition key's hash.
    pub(crate) fn put(&mut self, key: KeyParts, new: NewItem, created_secs: u64) -> Appended {
        let image = new.json.clone();
        let new_size = new.size;
        let stored = StoredItem {
            item: new.item,
            json: new.json,
            size: new_size,
        };
        let old = self.table.insert(key.json.clone(), stored);
        let kind = if old.is_some() {
            RecordKind::Modify
        } else {
            RecordKind::Insert
        };
        self.record(kind, key, Some((image, new_size)), old, false, created_secs)
    }

    /// Deletes an item: `REMOVE` with the old image, or `None` if the key was absent.
    pub(crate) fn delete(
        &mut self,
        key: KeyParts,
        ttl: bool,
        created_secs: u64,
    ) -> Option<Appended> {
        let old = self.table.remove(&key.json)?;
        Some(self.record(RecordKind::Remove, key, None, Some(old), ttl, created_secs))
    }

    fn record(
        &mut self,
        kind: RecordKind,
        key: KeyParts,
        new: Option<(Bytes, u64)>,
        old: Option<StoredItem>,
        ttl: bool,
        created_secs: u64,
    ) -> Appended {
        let change = EncodedChange {
            kind,
            size_bytes: key.size
                + new.as_ref().map_or(0, |n| n.1)
                + old.as_ref().map_or(0, |o| o.size),
            keys: key.json,
            new_image: new.map(|n| n.0),
            old_image: old.map(|o| o.json),
            ttl,
            created_secs,
        };
        let idx = self.route(key.hash);
        self.push(idx, &change)
    }

    pub(crate) fn item(&self, key_json: &[u8]) -> Option<Item> {
        self.table.get(key_json).map(|s| s.item.clone())
    }

    /// Appends to a given shard, which must be open.
    pub(crate) fn append(
        &mut self,
        id: &str,
        change: &EncodedChange,
    ) -> Result<Appended, SimError> {
        let idx = self
            .index(id)
            .ok_or_else(|| SimError::new(SimErrorKind::UnknownShard, id))?;
        if !self.shards[idx].open {
            return Err(SimError::new(SimErrorKind::ShardClosed, id));
        }
        Ok(self.push(idx, change))
    }

    fn push(&mut self, idx: usize, change: &EncodedChange) -> Appended {
        let seq = self.seqs.issue();
        let seq_str = seq.to_string();
        let h = hash_bytes(seq_str.as_bytes()) ^ self.event_salt;
        let event_id = format!("{:016x}{:016x}", mix(h), mix(!h));
        let bytes = render_record(change, &self.ctx, &seq_str, &event_id);
        let shard = &mut self.shards[idx];
        shard.push(seq, bytes);
        Appended {
            shard_id: shard.id.to_string(),
            sequence_number: seq_str,
        }
    }

    pub(crate) fn snapshot(&self, now: Instant) -> Vec<SimShard> {
        let next = self.seqs.peek();
        self.shards
            .iter()
            .map(|s| SimShard {
                shard_id: s.id.to_string(),
                parent_shard_id: s.parent.as_deref().map(str::to_owned),
                open: s.open,
                visible: s.listed(now),
                aged_out: s.aged_out,
                records: s.readable(),
                trimmed: s.base(),
                starting_sequence_number: s.starting_seq(next).to_string(),
                ending_sequence_number: s.end_seq().map(|q| q.to_string()),
                first_sequence_number: s.first_readable_seq().map(|q| q.to_string()),
                last_sequence_number: s.last_seq().map(|q| q.to_string()),
                hash_range: s.range,
            })
            .collect()
    }

    /// Trims shard `idx` before `seq` (a decimal string; ignored with a warning if invalid).
    pub(crate) fn trim_before(&mut self, idx: usize, seq: &str) {
        match Seq::parse(seq) {
            Some(q) => self.shards[idx].trim_before(q),
            None => tracing::warn!(seq, "trim_before: not a sequence number"),
        }
    }
}

/// Divides the inclusive range `r` into `n` contiguous parts; a part too small to hold a
/// hash is `None` (that child takes only raw appends).
fn divide((lo, hi): (u64, u64), n: usize) -> Vec<Option<(u64, u64)>> {
    let width = u128::from(hi) - u128::from(lo) + 1;
    let n128 = n.max(1) as u128;
    (0..n as u128)
        .map(|i| {
            let start = u128::from(lo) + width * i / n128;
            let end = u128::from(lo) + width * (i + 1) / n128;
            (end > start).then(|| (start as u64, (end - 1) as u64))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use aws_sdk_dynamodbstreams::types::StreamViewType;

    fn model() -> Model {
        let settings = Settings {
            iterator_ttl: Duration::from_secs(900),
            max_page: 1000,
            describe_rate_limit: false,
            shuffle_listing: true,
            trailing_empty_listing_page: false,
            sequence_numbers: SequenceNumbers::default(),
            seed: 1,
        };
        let ctx = RecordContext {
            region: "us-east-1",
            view: StreamViewType::NewAndOldImages,
        };
        Model::new(settings, ctx, 1, 1_700_000_000_000)
    }

    /// The open routed shards must partition the key space exactly.
    fn assert_partition(m: &Model) {
        assert!(m.gaps().is_empty(), "gaps: {:?}", m.gaps());
        let mut cursor: u128 = 0;
        for (&lo, &i) in &m.routing {
            let (rlo, rhi) = m.shards[i].range.unwrap();
            assert!(m.shards[i].open);
            assert_eq!((u128::from(lo), u128::from(rlo)), (cursor, cursor));
            cursor = u128::from(rhi) + 1;
        }
        assert_eq!(cursor, 1 << 64);
    }

    #[test]
    fn divide_covers_the_range() {
        assert_eq!(
            divide((0, u64::MAX), 2),
            vec![Some((0, u64::MAX / 2)), Some((u64::MAX / 2 + 1, u64::MAX))]
        );
        assert_eq!(divide((5, 6), 3), vec![None, Some((5, 5)), Some((6, 6))]);
        assert_eq!(divide((0, 9), 1), vec![Some((0, 9))]);
    }

    #[test]
    fn routing_follows_splits_and_keeps_a_partition() {
        let mut m = model();
        m.create_roots(3);
        assert_partition(&m);
        let kids = m.split(1, 2, None).unwrap();
        assert_partition(&m);
        assert!(m.split(1, 2, None).is_none());
        let h = m.shards[kids[1]].range.unwrap().0;
        assert_eq!(m.route(h), kids[1]);
        m.create_shard();
        assert_partition(&m);
        assert_eq!(m.shards.len(), 6);
        // Closing leaves a gap; a write there opens a root covering exactly the gap.
        let gap = m.shards[0].range.unwrap();
        m.close(0);
        assert_eq!(m.gaps(), vec![gap]);
        let r = m.route(gap.1);
        assert_eq!(m.shards[r].range, Some(gap));
        assert_partition(&m);
    }

    #[test]
    fn writes_of_one_key_stay_in_one_lineage() {
        let mut m = model();
        m.create_roots(1);
        let schema = crate::sim::table::KeySchema {
            hash: "pk".into(),
            range: None,
        };
        let item = |i: u32| {
            Item::from([(
                "pk".to_string(),
                super::super::AttributeValue::N(i.to_string()),
            )])
        };
        let mut homes = HashMap::new();
        for round in 0..4 {
            for i in 0..50 {
                let (_, key) = schema.key_of(&item(i));
                let a = m.put(key, NewItem::new(item(i)), 0);
                let idx = m.index(&a.shard_id).unwrap();
                if let Some(prev) = homes.insert(i, idx) {
                    // Same shard, or a descendant of it.
                    let mut cur = idx;
                    while cur != prev {
                        let parent = m.shards[cur].parent.clone().unwrap();
                        cur = m.index(&parent).unwrap();
                    }
                }
            }
            let open: Vec<usize> = (0..m.shards.len()).filter(|&i| m.shards[i].open).collect();
            m.split(open[round % open.len()], 2, None);
        }
    }
}
