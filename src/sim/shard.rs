//! One shard: its records, trim point, sequence-number range and read positions.
//!
//! A position is the logical index of the next record to read. Trimming drops records from
//! the front and raises `base`, so logical indexes (and the iterators holding them) stay valid.

use super::seq::{Seq, SeqGen};
use bytes::Bytes;
use std::sync::Arc;
use tokio::time::Instant;

/// A record as stored: its number, and its JSON rendered once at append time.
#[derive(Clone, Debug)]
pub(crate) struct StoredRecord {
    pub(crate) seq: Seq,
    pub(crate) bytes: Bytes,
}

/// Why a position cannot be read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PositionError {
    /// The sequence number is not in this shard's range.
    NotInShard,
    /// The position lies before the trim point.
    Trimmed,
}

/// One page of records.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) records: Vec<Bytes>,
    /// Position after the page.
    pub(crate) next: u64,
    /// Whether the page reached the end of a closed shard: no next iterator.
    pub(crate) finished: bool,
}

#[derive(Debug)]
pub(crate) struct Shard {
    pub(crate) id: Arc<str>,
    pub(crate) parent: Option<Arc<str>>,
    pub(crate) children: Vec<usize>,
    /// Key hashes routed here while open; `None` for a shard that only takes raw appends.
    pub(crate) range: Option<(u64, u64)>,
    pub(crate) open: bool,
    /// Not listed before this instant (`split_hidden`).
    pub(crate) visible_at: Option<Instant>,
    pub(crate) aged_out: bool,
    /// Empty pages still to serve (`empty_pages`).
    pub(crate) empty_pages: u32,
    records: Vec<StoredRecord>,
    /// Logical index of `records[0]`: the number of records trimmed so far.
    base: u64,
    first_seq: Option<Seq>,
    last_seq: Option<Seq>,
    end_seq: Option<Seq>,
}

impl Shard {
    pub(crate) fn new(
        id: Arc<str>,
        parent: Option<Arc<str>>,
        range: Option<(u64, u64)>,
        visible_at: Option<Instant>,
    ) -> Shard {
        Shard {
            id,
            parent,
            children: Vec::new(),
            range,
            open: true,
            visible_at,
            aged_out: false,
            empty_pages: 0,
            records: Vec::new(),
            base: 0,
            first_seq: None,
            last_seq: None,
            end_seq: None,
        }
    }

    /// Whether DescribeStream lists it at `now`.
    pub(crate) fn listed(&self, now: Instant) -> bool {
        !self.aged_out && self.visible_at.is_none_or(|t| now >= t)
    }

    /// Logical index of the trim point (first readable record).
    pub(crate) fn base(&self) -> u64 {
        self.base
    }

    /// Logical index one past the last record: where `LATEST` points.
    pub(crate) fn end(&self) -> u64 {
        self.base + self.records.len() as u64
    }

    pub(crate) fn readable(&self) -> usize {
        self.records.len()
    }

    pub(crate) fn first_readable_seq(&self) -> Option<Seq> {
        self.records.first().map(|r| r.seq)
    }

    pub(crate) fn last_seq(&self) -> Option<Seq> {
        self.last_seq
    }

    pub(crate) fn end_seq(&self) -> Option<Seq> {
        self.end_seq
    }

    /// `StartingSequenceNumber`: the first record's number, or the next number to be issued
    /// while the shard has never held one.
    pub(crate) fn starting_seq(&self, next_issued: Seq) -> Seq {
        self.first_seq.unwrap_or(next_issued)
    }

    pub(crate) fn push(&mut self, seq: Seq, bytes: Bytes) {
        self.first_seq.get_or_insert(seq);
        self.last_seq = Some(seq);
        self.records.push(StoredRecord { seq, bytes });
    }

    /// Closes the shard, fixing `EndingSequenceNumber`. An empty shard reserves a number of
    /// its own so that its range is not empty and no other record reuses the number.
    pub(crate) fn close(&mut self, seqs: &mut SeqGen) {
        if !self.open {
            return;
        }
        self.open = false;
        let end = match self.last_seq {
            Some(s) => s,
            None => {
                let s = seqs.issue();
                self.first_seq = Some(s);
                s
            }
        };
        self.end_seq = Some(end);
    }

    /// Drops the records numbered below `seq`.
    pub(crate) fn trim_before(&mut self, seq: Seq) {
        let n = self.records.partition_point(|r| r.seq < seq);
        self.drop_front(n);
    }

    pub(crate) fn trim_all(&mut self) {
        self.drop_front(self.records.len());
    }

    fn drop_front(&mut self, n: usize) {
        if n > 0 {
            self.records.drain(..n);
            self.base += n as u64;
        }
    }

    /// The position for `AT_SEQUENCE_NUMBER` (`after == false`) or `AFTER_SEQUENCE_NUMBER`.
    ///
    /// The number must lie between the shard's first and last numbers. A number that was
    /// trimmed (below the first readable record) is `TrimmedDataAccessException` for both
    /// types, even `AFTER` the very last trimmed record.
    pub(crate) fn position_at(&self, seq: Seq, after: bool) -> Result<u64, PositionError> {
        let (Some(first), Some(last)) = (self.first_seq, self.end_seq.or(self.last_seq)) else {
            return Err(PositionError::NotInShard);
        };
        if seq < first || seq > last {
            return Err(PositionError::NotInShard);
        }
        if self.base > 0 && self.first_readable_seq().is_none_or(|f| seq < f) {
            return Err(PositionError::Trimmed);
        }
        let skipped = if after {
            self.records.partition_point(|r| r.seq <= seq)
        } else {
            self.records.partition_point(|r| r.seq < seq)
        };
        Ok(self.base + skipped as u64)
    }

    /// Reads up to `max_records` records and about `max_bytes` bytes (at least one record
    /// when any is there) from `pos`.
    pub(crate) fn page(
        &self,
        pos: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Page, PositionError> {
        if pos < self.base {
            return Err(PositionError::Trimmed);
        }
        let Ok(start) = usize::try_from(pos - self.base) else {
            return Err(PositionError::NotInShard);
        };
        if start > self.records.len() {
            return Err(PositionError::NotInShard);
        }
        let mut records = Vec::new();
        let mut bytes = 0;
        for r in self.records[start..].iter().take(max_records) {
            if !records.is_empty() && bytes + r.bytes.len() > max_bytes {
                break;
            }
            bytes += r.bytes.len();
            records.push(r.bytes.clone());
        }
        let next = pos + records.len() as u64;
        Ok(Page {
            records,
            next,
            finished: !self.open && next == self.end(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::sim::seq::SequenceNumbers;

    fn shard_with(n: usize, seqs: &mut SeqGen) -> (Shard, Vec<Seq>) {
        let mut s = Shard::new(Arc::from("s"), None, None, None);
        let nums: Vec<Seq> = (0..n).map(|_| seqs.issue()).collect();
        for &q in &nums {
            s.push(q, Bytes::from_static(b"{}"));
        }
        (s, nums)
    }

    #[test]
    fn positions_and_trims() {
        let mut g = SeqGen::new(SequenceNumbers::default(), 3);
        let (mut s, nums) = shard_with(5, &mut g);
        assert_eq!(s.position_at(nums[2], false), Ok(2));
        assert_eq!(s.position_at(nums[2], true), Ok(3));
        assert_eq!(
            s.position_at(nums[4].add(1), false),
            Err(PositionError::NotInShard)
        );
        assert_eq!(
            s.position_at(nums[0].sub(1), false),
            Err(PositionError::NotInShard)
        );
        s.trim_before(nums[2]);
        assert_eq!(s.base(), 2);
        assert_eq!(s.position_at(nums[1], true), Err(PositionError::Trimmed));
        assert_eq!(s.position_at(nums[2], false), Ok(2));
        assert!(matches!(
            s.page(1, 10, 1 << 20),
            Err(PositionError::Trimmed)
        ));
        let p = s.page(2, 2, 1 << 20).unwrap();
        assert_eq!((p.records.len(), p.next, p.finished), (2, 4, false));
        s.close(&mut g);
        let p = s.page(4, 10, 1 << 20).unwrap();
        assert_eq!((p.records.len(), p.next, p.finished), (1, 5, true));
        s.trim_all();
        assert_eq!(s.position_at(nums[4], true), Err(PositionError::Trimmed));
        assert!(s.page(5, 10, 1 << 20).unwrap().finished);
    }

    #[test]
    fn byte_cap_keeps_at_least_one_record() {
        let mut g = SeqGen::new(SequenceNumbers::default(), 3);
        let (s, _) = shard_with(3, &mut g);
        assert_eq!(s.page(0, 10, 1).unwrap().records.len(), 1);
        assert_eq!(s.page(0, 10, 4).unwrap().records.len(), 2);
    }

    #[test]
    fn empty_shard_reserves_a_number_when_closed() {
        let mut g = SeqGen::new(SequenceNumbers::Dense { digits: 21 }, 3);
        let mut s = Shard::new(Arc::from("s"), None, None, None);
        let next = g.peek();
        assert_eq!(s.starting_seq(next), next);
        s.close(&mut g);
        assert_eq!(s.end_seq(), Some(next));
        assert_eq!(s.starting_seq(g.peek()), next);
        assert!(g.peek() > next);
    }
}
