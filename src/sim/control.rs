//! Scripting the stream: shards and their lifecycle, table writes, trims, faults, quirks.

use super::json::{EncodedChange, item_bytes, item_size};
use super::model::Injected;
use super::table::NewItem;
use super::{
    Appended, CallCounts, Fault, Item, Operation, SimError, SimRecord, SimShard, Simulator,
};

use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

/// Longest `split_hidden` delay honoured; longer ones are clamped so `Instant` cannot overflow.
const MAX_HIDDEN: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl Simulator {
    /// Opens a new root shard (no parent) and returns its id.
    ///
    /// The root covers the widest part of the key-hash space that no open shard covers, or
    /// else takes over the upper half of the widest open shard's range. Keys in a range taken
    /// over move to the new root: their later records have no order relative to the earlier
    /// ones, as between unrelated shards. For per-key ordering tests, start with
    /// [`SimulatorBuilder::initial_shards`](super::SimulatorBuilder::initial_shards) and
    /// grow with [`Simulator::split`].
    pub fn create_shard(&self) -> String {
        let mut m = self.lock();
        let idx = m.create_shard();
        m.shards[idx].id.to_string()
    }

    /// Closes `shard` and opens `children` new shards whose `ParentShardId` is `shard`,
    /// dividing its key range; they are listed at once. One child is a rollover; zero just
    /// closes the shard. Returns the children's ids: empty if `shard` is unknown or closed.
    pub fn split(&self, shard: &str, children: usize) -> Vec<String> {
        self.split_at(shard, children, None)
    }

    /// Like [`Simulator::split`], but DescribeStream lists the children only once
    /// `visible_after` has passed on tokio's clock. They take records meanwhile, as real
    /// shards do before the listing catches up.
    pub fn split_hidden(
        &self,
        shard: &str,
        children: usize,
        visible_after: Duration,
    ) -> Vec<String> {
        let now = Instant::now();
        let at = now
            .checked_add(visible_after.min(MAX_HIDDEN))
            .unwrap_or(now);
        self.split_at(shard, children, Some(at))
    }

    fn split_at(&self, shard: &str, children: usize, visible_at: Option<Instant>) -> Vec<String> {
        let mut m = self.lock();
        let Some(idx) = m.index(shard) else {
            tracing::warn!(shard, "split: unknown shard");
            return Vec::new();
        };
        match m.split(idx, children, visible_at) {
            Some(kids) => kids
                .into_iter()
                .map(|i| m.shards[i].id.to_string())
                .collect(),
            None => {
                tracing::warn!(shard, "split: shard is already closed");
                Vec::new()
            }
        }
    }

    /// Closes `shard` without children: `EndingSequenceNumber` appears in the listing and
    /// reading past its last record ends without a `NextShardIterator`.
    pub fn close_shard(&self, shard: &str) {
        self.with_shard(shard, "close_shard", |m, idx| m.close(idx));
    }

    /// Ages `shard` out, as the service does 24 hours after its records expire: it is closed,
    /// all its records are trimmed, and it is no longer listed, so its children name a parent
    /// that is not listed. GetShardIterator on it is `ResourceNotFoundException`; GetRecords
    /// with an iterator issued before is `TrimmedDataAccessException` unless it was at the end.
    pub fn age_out(&self, shard: &str) {
        self.with_shard(shard, "age_out", |m, idx| m.age_out(idx));
    }

    /// A snapshot of every shard ever created, in creation order (aged-out ones included).
    pub fn shards(&self) -> Vec<SimShard> {
        self.lock().snapshot(Instant::now())
    }

    /// Writes `item` to the table and returns where its record went: `INSERT` if its key is
    /// absent, else `MODIFY` with the previous item as old image (even if nothing changed).
    ///
    /// The record goes to the open shard whose key range holds the hash of the partition
    /// key, so every write of an item stays in one shard lineage; a shard is opened if none
    /// covers it. An item missing a key attribute is keyed by the attributes it has.
    pub fn put_item(&self, item: Item) -> Appended {
        let key = self.inner.meta.keys.key_of(&item);
        let new = NewItem::new(item);
        self.lock().put(key, new, self.created_secs())
    }

    /// Deletes the item with `key` (other attributes are ignored): a `REMOVE` record with the
    /// old image, or `None` if there was no such item.
    pub fn delete_item(&self, key: Item) -> Option<Appended> {
        let key = self.inner.meta.keys.key_of(&key);
        self.lock().delete(key, false, self.created_secs())
    }

    /// Like [`Simulator::delete_item`], as a TTL expiry: the record's `userIdentity` is
    /// `{Type: "Service", PrincipalId: "dynamodb.amazonaws.com"}`.
    pub fn ttl_delete(&self, key: Item) -> Option<Appended> {
        let key = self.inner.meta.keys.key_of(&key);
        self.lock().delete(key, true, self.created_secs())
    }

    /// The table's current item with `key` (other attributes are ignored).
    pub fn item(&self, key: &Item) -> Option<Item> {
        let key = self.inner.meta.keys.key_of(key);
        self.lock().item(&key.json)
    }

    /// Appends a raw record to the open `shard`, bypassing the table; returns its sequence
    /// number. Fails if the shard is unknown or closed.
    pub fn append(&self, shard: &str, record: SimRecord) -> Result<String, SimError> {
        let sizes = [
            Some(&record.keys),
            record.new_image.as_ref(),
            record.old_image.as_ref(),
        ];
        let mut m = self.lock();
        let change = EncodedChange {
            kind: record.kind,
            keys: item_bytes(&record.keys),
            new_image: record.new_image.as_ref().map(item_bytes),
            old_image: record.old_image.as_ref().map(item_bytes),
            ttl: record.ttl,
            created_secs: self.created_secs(),
            size_bytes: sizes.into_iter().flatten().map(item_size).sum(),
        };
        m.append(shard, &change).map(|a| a.sequence_number)
    }

    /// Stamps every later write (`put_item`, `delete_item`, `ttl_delete`, `append`) as created
    /// `age` before now (whole seconds), as records written that long ago and not read yet:
    /// for tests of lag. Time is the system clock here, as on the service, not tokio's.
    /// `Duration::ZERO` stamps writes with the present again. Default is zero.
    pub fn backdate(&self, age: Duration) {
        self.inner.backdate.store(age.as_secs(), Ordering::Relaxed);
    }

    /// Makes the next `times` calls of `op` fail with `fault`, before any other handling.
    /// Scripted faults are used in the order they were injected; SDK retries count as calls.
    pub fn inject(&self, op: Operation, fault: Fault, times: u32) {
        if times > 0 {
            self.lock().faults.push_back(Injected {
                op,
                fault,
                left: times,
            });
        }
    }

    /// Makes the next `pages` GetRecords calls on `shard` return an empty page whose
    /// `NextShardIterator` does not advance, even with a backlog, as the service does
    /// mid-shard. A closed shard's final page is never replaced.
    pub fn empty_pages(&self, shard: &str, pages: u32) {
        self.with_shard(shard, "empty_pages", |m, idx| {
            let s = &mut m.shards[idx];
            s.empty_pages = s.empty_pages.saturating_add(pages);
        });
    }

    /// Trims `shard`'s records numbered below `sequence_number`, as retention does.
    ///
    /// Afterwards `TRIM_HORIZON` starts at the first remaining record, GetShardIterator
    /// `AT_`/`AFTER_SEQUENCE_NUMBER` with a trimmed number, and GetRecords with an iterator
    /// pointing below the trim point, are `TrimmedDataAccessException`.
    pub fn trim_before(&self, shard: &str, sequence_number: &str) {
        self.with_shard(shard, "trim_before", |m, idx| {
            m.trim_before(idx, sequence_number)
        });
    }

    /// Trims every record `shard` holds now.
    pub fn trim_all(&self, shard: &str) {
        self.with_shard(shard, "trim_all", |m, idx| m.shards[idx].trim_all());
    }

    /// Deletes the stream: from now on every DescribeStream, GetShardIterator and GetRecords
    /// is `ResourceNotFoundException` (and ListStreams no longer lists it).
    pub fn delete_stream(&self) {
        self.lock().deleted = true;
    }

    /// Caps the records per GetRecords page, on top of the request's `Limit` and the 1 MB
    /// page cap. Default is 1000 (the service's maximum); 0 is treated as 1.
    pub fn set_max_page(&self, records: usize) {
        self.lock().settings.max_page = records.max(1);
    }

    /// Calls served so far, per operation, and how many were errors.
    pub fn calls(&self) -> CallCounts {
        self.lock().counts
    }

    fn with_shard(&self, shard: &str, what: &str, f: impl FnOnce(&mut super::Model, usize)) {
        let mut m = self.lock();
        match m.index(shard) {
            Some(idx) => f(&mut m, idx),
            None => tracing::warn!(shard, "{what}: unknown shard"),
        }
    }
}
