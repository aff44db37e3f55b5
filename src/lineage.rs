//! The shard graph: which shards may be read now, and what a finished shard releases.
//!
//! Pure bookkeeping, no I/O. Per-key order in DynamoDB Streams is "parent drained before any
//! child, then order inside the shard", so a shard becomes ready only when its parent has been
//! delivered to its end, or when its parent is not listed (aged out: the shard is a root).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::status::ShardState;

/// One shard as the service lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ShardInfo {
    pub(crate) id: Arc<str>,
    pub(crate) parent: Option<Arc<str>>,
    /// `EndingSequenceNumber` present: no new records will arrive.
    pub(crate) closed: bool,
}

#[derive(Debug)]
struct Node {
    parent: Option<Arc<str>>,
    state: ShardState,
    /// Listed with an `EndingSequenceNumber`: no new records will arrive.
    closed: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Lineage {
    nodes: HashMap<Arc<str>, Node>,
    /// parent id -> children ids, for parents known or not.
    children: HashMap<Arc<str>, Vec<Arc<str>>>,
}

impl Lineage {
    /// Records shards from a listing (any order, any subset) and returns the ones that just
    /// became ready to read. Shards already known are left as they are.
    ///
    /// A shard whose parent is neither known nor in `shards` is a root. `done` says which new
    /// shards need no reading (a checkpoint has them finished, or they closed before a `LATEST`
    /// start): they count as finished at once.
    pub(crate) fn observe(
        &mut self,
        shards: &[ShardInfo],
        done: impl Fn(&ShardInfo) -> bool,
    ) -> Vec<Arc<str>> {
        let mut added = Vec::new();
        for info in shards {
            if let Some(node) = self.nodes.get_mut(&info.id) {
                node.closed |= info.closed;
                continue;
            }
            self.nodes.insert(
                info.id.clone(),
                Node {
                    parent: info.parent.clone(),
                    closed: info.closed,
                    state: if done(info) {
                        ShardState::Finished
                    } else {
                        ShardState::Waiting
                    },
                },
            );
            if let Some(parent) = &info.parent {
                self.children
                    .entry(parent.clone())
                    .or_default()
                    .push(info.id.clone());
            }
            added.push(info.id.clone());
        }
        let mut ready: Vec<Arc<str>> = added.into_iter().filter(|id| self.is_ready(id)).collect();
        ready.sort();
        for id in &ready {
            self.set_state(id, ShardState::Reading);
        }
        ready
    }

    /// Whether the shard was listed.
    pub(crate) fn knows(&self, id: &str) -> bool {
        self.nodes.contains_key(id)
    }

    /// Whether the last listing had the shard closed.
    pub(crate) fn is_closed(&self, id: &str) -> bool {
        self.nodes.get(id).is_some_and(|node| node.closed)
    }

    fn is_ready(&self, id: &str) -> bool {
        let Some(node) = self.nodes.get(id) else {
            return false;
        };
        if node.state != ShardState::Waiting {
            return false;
        }
        match &node.parent {
            None => true,
            Some(parent) => self
                .nodes
                .get(parent)
                .is_none_or(|p| p.state == ShardState::Finished),
        }
    }

    fn set_state(&mut self, id: &str, state: ShardState) {
        if let Some(node) = self.nodes.get_mut(id) {
            node.state = state;
        }
    }

    /// A shard was delivered to its end: returns its children that are now ready.
    pub(crate) fn finish(&mut self, id: &str) -> Vec<Arc<str>> {
        self.set_state(id, ShardState::Finished);
        let mut ready: Vec<Arc<str>> = self
            .children
            .get(id)
            .into_iter()
            .flatten()
            .filter(|child| self.is_ready(child))
            .cloned()
            .collect();
        ready.sort();
        for child in &ready {
            self.set_state(child, ShardState::Reading);
        }
        ready
    }

    pub(crate) fn caught_up(&mut self, id: &str) {
        self.set_state(id, ShardState::CaughtUp);
    }

    /// The parent of `id`, if `id` is known and has one.
    pub(crate) fn parent(&self, id: &str) -> Option<&Arc<str>> {
        self.nodes.get(id)?.parent.as_ref()
    }

    /// Whether any child of `id` is known.
    pub(crate) fn has_children(&self, id: &str) -> bool {
        self.children.get(id).is_some_and(|c| !c.is_empty())
    }

    #[cfg(test)]
    pub(crate) fn state(&self, id: &str) -> Option<ShardState> {
        self.nodes.get(id).map(|n| n.state)
    }

    /// Forgets finished shards that are no longer listed (aged out of the stream), returning
    /// them. Unfinished shards are kept: losing one unread is data loss, reported elsewhere.
    pub(crate) fn prune(&mut self, listed: &HashSet<Arc<str>>) -> Vec<Arc<str>> {
        let gone: Vec<Arc<str>> = self
            .nodes
            .iter()
            .filter(|(id, node)| node.state == ShardState::Finished && !listed.contains(*id))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            self.nodes.remove(id);
            self.children.remove(id);
        }
        gone
    }

    /// Every known shard and its state, ordered by id.
    pub(crate) fn states(&self) -> Vec<(Arc<str>, ShardState)> {
        let mut all: Vec<_> = self
            .nodes
            .iter()
            .map(|(id, n)| (id.clone(), n.state))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn shard(id: &str, parent: Option<&str>) -> ShardInfo {
        ShardInfo {
            id: id.into(),
            parent: parent.map(Into::into),
            closed: false,
        }
    }

    fn none(_: &ShardInfo) -> bool {
        false
    }

    fn ids(v: Vec<Arc<str>>) -> Vec<String> {
        v.into_iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn children_wait_for_their_parent_whatever_the_listing_order() {
        let mut l = Lineage::default();
        let ready = l.observe(
            &[
                shard("c1", Some("p")),
                shard("p", None),
                shard("c2", Some("p")),
            ],
            none,
        );
        assert_eq!(ids(ready), ["p"]);
        assert_eq!(l.state("c1"), Some(ShardState::Waiting));
        assert_eq!(ids(l.finish("p")), ["c1", "c2"]);
        assert!(l.finish("c1").is_empty());
    }

    #[test]
    fn a_child_of_an_unlisted_parent_is_a_root() {
        let mut l = Lineage::default();
        assert_eq!(
            ids(l.observe(&[shard("orphan", Some("aged-out"))], none)),
            ["orphan"]
        );
    }

    #[test]
    fn children_listed_after_the_parent_finished_start_at_once() {
        let mut l = Lineage::default();
        l.observe(&[shard("p", None)], none);
        assert!(l.finish("p").is_empty());
        assert!(!l.has_children("p"));
        assert_eq!(ids(l.observe(&[shard("c", Some("p"))], none)), ["c"]);
        // Seen again in a later listing: not started twice.
        assert!(l.observe(&[shard("c", Some("p"))], none).is_empty());
    }

    #[test]
    fn shards_known_to_be_done_are_skipped_and_release_their_children() {
        let mut l = Lineage::default();
        let ready = l.observe(&[shard("c", Some("p")), shard("p", None)], |s| {
            &*s.id == "p"
        });
        assert_eq!(ids(ready), ["c"]);
        assert_eq!(l.state("p"), Some(ShardState::Finished));
    }

    #[test]
    fn prune_forgets_only_finished_unlisted_shards() {
        let mut l = Lineage::default();
        l.observe(&[shard("a", None), shard("b", None)], none);
        l.finish("a");
        let listed: HashSet<Arc<str>> = HashSet::new();
        assert_eq!(ids(l.prune(&listed)), ["a"]);
        assert_eq!(l.state("a"), None);
        assert_eq!(l.state("b"), Some(ShardState::Reading));
    }

    proptest! {
        /// Over random trees and listing orders: every shard becomes ready exactly once, and
        /// only after its parent finished (or its parent was never listed).
        #[test]
        fn random_trees(parents in proptest::collection::vec(proptest::option::of(0usize..1000), 1..60), seed in any::<u64>()) {
            let n = parents.len();
            // Shard i may only have a parent j < i; some parents are "unlisted" (j >= n/2 hidden).
            let infos: Vec<ShardInfo> = (0..n).map(|i| {
                let parent = parents[i].filter(|_| i > 0).map(|p| p % i).map(|p| format!("s{p}"));
                ShardInfo { id: format!("s{i}").into(), parent: parent.map(Into::into), closed: false }
            }).collect();
            let hidden: HashSet<usize> = (0..n).filter(|i| (seed >> (i % 64)) & 1 == 1 && i % 3 == 0).collect();
            let mut listing: Vec<ShardInfo> = infos.iter().enumerate().filter(|(i, _)| !hidden.contains(i)).map(|(_, s)| s.clone()).collect();
            let mut rng = seed;
            for i in (1..listing.len()).rev() {
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                listing.swap(i, (rng >> 33) as usize % (i + 1));
            }
            let mut l = Lineage::default();
            let mut queue: Vec<Arc<str>> = l.observe(&listing, none);
            let mut finished: HashSet<Arc<str>> = HashSet::new();
            while let Some(id) = queue.pop() {
                let info = listing.iter().find(|s| s.id == id).unwrap();
                if let Some(p) = &info.parent {
                    let listed = listing.iter().any(|s| &s.id == p);
                    prop_assert!(!listed || finished.contains(p), "{id} started before {p}");
                }
                prop_assert!(finished.insert(id.clone()), "{id} started twice");
                queue.extend(l.finish(&id));
            }
            prop_assert_eq!(finished.len(), listing.len());
        }
    }
}
