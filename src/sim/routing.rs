//! Routing keys to shards: open shards own disjoint ranges of the 64-bit key-hash space.
//!
//! Splits divide a parent's range among its children, so every write of a key stays in the
//! key's shard lineage; a key no open shard covers gets a new root covering the gap.

use super::model::Model;

impl Model {
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
    pub(crate) fn gaps(&self) -> Vec<(u64, u64)> {
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
    pub(crate) fn route(&mut self, h: u64) -> usize {
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

    pub(crate) fn stop_routing(&mut self, idx: usize) {
        if let Some((lo, _)) = self.shards[idx].range
            && self.routing.get(&lo) == Some(&idx)
        {
            self.routing.remove(&lo);
        }
    }
}

/// Divides the inclusive range `r` into `n` contiguous parts; a part too small to hold a
/// hash is `None` (that child takes only raw appends).
pub(crate) fn divide((lo, hi): (u64, u64), n: usize) -> Vec<Option<(u64, u64)>> {
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
    use crate::sim::Item;
    use crate::sim::table::NewItem;
    use std::collections::HashMap;

    fn model() -> Model {
        Model::for_tests()
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
                let key = schema.key_of(&item(i));
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
