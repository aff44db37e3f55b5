//! The stream's state: its shards, how keys are routed to them, the listing order, the table.
//!
//! Pure and synchronous: time comes in as an argument, so the lock around it is held only
//! for in-memory bookkeeping.

use super::Item;
use super::hash::{FnvBuild, hash_bytes, mix};
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
    pub(crate) routing: BTreeMap<u64, usize>,
    pub(crate) listing: BTreeMap<ListKey, usize>,
    table: HashMap<Bytes, StoredItem, FnvBuild>,
    rng: fastrand::Rng,
    id_base_ms: u64,
    ctx: RecordContext,
    event_salt: u64,
    pub(crate) epoch: Instant,
    pub(crate) deleted: bool,
    pub(crate) faults: VecDeque<Injected>,
    pub(crate) counts: CallCounts,
    pub(crate) describe_calls: VecDeque<Instant>,
    /// Writes are stamped as created this many seconds before now (`Simulator::backdate`).
    pub(crate) backdate_secs: u64,
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
            table: HashMap::default(),
            id_base_ms,
            ctx,
            event_salt: mix(sim),
            epoch: Instant::now(),
            deleted: false,
            faults: VecDeque::new(),
            counts: CallCounts::default(),
            describe_calls: VecDeque::new(),
            backdate_secs: 0,
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

    pub(crate) fn new_shard(
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
            Some(r) => super::routing::divide(r, n),
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

#[cfg(test)]
impl Model {
    /// A model with test settings and no shards.
    pub(crate) fn for_tests() -> Model {
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
            view: aws_sdk_dynamodbstreams::types::StreamViewType::NewAndOldImages,
        };
        Model::new(settings, ctx, 1, 1_700_000_000_000)
    }
}
