//! The consumer's running positions, from which every event's checkpoint is cut.

use std::sync::Arc;

use super::{Checkpoint, ShardPosition, Snapshot};

/// The consumer's running record of delivered positions, from which checkpoints are cut.
///
/// Positions live in a persistent map: cutting a snapshot is O(1) and an update copies only a
/// path of the map, so a checkpoint on every event costs O(1) amortised however many shards
/// the stream has.
#[derive(Debug)]
pub(crate) struct Positions {
    stream_arn: Arc<str>,
    map: imbl::HashMap<Arc<str>, ShardPosition>,
    unlisted: Option<ShardPosition>,
    /// Lease epochs of the shards held through a lease table.
    epochs: imbl::HashMap<Arc<str>, u64>,
    snapshot: Option<Arc<Snapshot>>,
}

impl Positions {
    pub(crate) fn new(
        stream_arn: Arc<str>,
        map: imbl::HashMap<Arc<str>, ShardPosition>,
        unlisted: Option<ShardPosition>,
    ) -> Self {
        Self {
            stream_arn,
            map,
            unlisted,
            epochs: imbl::HashMap::new(),
            snapshot: None,
        }
    }

    pub(crate) fn set(&mut self, shard: Arc<str>, position: ShardPosition) {
        self.map.insert(shard, position);
        self.snapshot = None;
    }

    /// The shards with a position of their own.
    pub(crate) fn listed(&self) -> &imbl::HashMap<Arc<str>, ShardPosition> {
        &self.map
    }

    /// The position of `shard` if it has one of its own.
    pub(crate) fn get(&self, shard: &str) -> Option<&ShardPosition> {
        self.map.get(shard)
    }

    /// The position of `shard`: its own, or else the one of every shard not listed
    /// (`LatestSince` the start for a consumer that started at `LATEST`).
    pub(crate) fn position(&self, shard: &str) -> Option<&ShardPosition> {
        self.map.get(shard).or(self.unlisted.as_ref())
    }

    /// Sets (`Some`) or forgets (`None`) the position of `shard`.
    pub(crate) fn edit(&mut self, shard: Arc<str>, position: Option<ShardPosition>) {
        match position {
            Some(position) => self.set(shard, position),
            None => self.remove(&shard),
        }
    }

    /// Forgets `shard` if it is finished.
    pub(crate) fn forget_finished(&mut self, shard: &str) {
        if self.map.get(shard) == Some(&ShardPosition::Finished) {
            self.remove(shard);
        }
    }

    pub(crate) fn remove(&mut self, shard: &str) {
        let epoch = self.epochs.remove(shard);
        if self.map.remove(shard).is_some() || epoch.is_some() {
            self.snapshot = None;
        }
    }

    /// Starts reading `shard` under lease `epoch`, from `position` (`None`: the trim horizon).
    #[cfg_attr(not(feature = "dynamodb-store"), allow(dead_code))]
    pub(crate) fn lease(&mut self, shard: Arc<str>, epoch: u64, position: Option<ShardPosition>) {
        self.epochs.insert(shard.clone(), epoch);
        match position {
            Some(position) => self.map.insert(shard, position),
            None => self.map.remove(&shard),
        };
        self.snapshot = None;
    }

    /// The current positions, shared until the next change.
    pub(crate) fn snapshot(&mut self) -> Arc<Snapshot> {
        self.snapshot
            .get_or_insert_with(|| {
                Arc::new(Snapshot::new(
                    self.stream_arn.clone(),
                    self.map.clone(),
                    self.unlisted.clone(),
                    self.epochs.clone(),
                ))
            })
            .clone()
    }

    pub(crate) fn checkpoint(&mut self) -> Checkpoint {
        Checkpoint {
            base: self.snapshot(),
            head: None,
            mark: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::testing::{ARN, seq};

    #[test]
    fn head_overrides_base() {
        let mut p = Positions::new(ARN.into(), imbl::HashMap::new(), None);
        p.set("s".into(), ShardPosition::After(seq("5")));
        let cp = Checkpoint::new(p.snapshot(), "s".into(), ShardPosition::After(seq("9")));
        assert_eq!(cp.position("s"), Some(&ShardPosition::After(seq("9"))));
        assert_eq!(cp.positions().len(), 1);
    }

    #[test]
    fn snapshots_are_shared_until_a_change() {
        let mut p = Positions::new(ARN.into(), imbl::HashMap::new(), None);
        let a = p.snapshot();
        let b = p.snapshot();
        assert!(Arc::ptr_eq(&a, &b));
        p.set("x".into(), ShardPosition::Finished);
        let c = p.snapshot();
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(
            a.positions.is_empty(),
            "older snapshots keep their positions"
        );
    }
}
