use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use proptest::prelude::*;

use super::*;

use crate::checkpoint::testing::ARN;

fn seq(n: u64) -> SequenceNumber {
    crate::checkpoint::testing::seq(&format!("{n:021}"))
}

fn shard(id: &str, parent: Option<&str>, closed: bool) -> ShardInfo {
    ShardInfo {
        id: id.into(),
        parent: parent.map(Into::into),
        closed,
    }
}

fn positions(entries: &[(&str, ShardPosition)], unlisted: Option<ShardPosition>) -> Positions {
    let map = entries
        .iter()
        .map(|(id, pos)| (Arc::from(*id), pos.clone()))
        .collect();
    Positions::new(ARN.into(), map, unlisted)
}

fn set(ids: &[&str]) -> HashSet<Arc<str>> {
    ids.iter().map(|id| Arc::from(*id)).collect()
}

#[test]
fn a_fresh_trim_horizon_start_reads_everything_from_the_start() {
    let listing = [shard("p", None, true), shard("c", Some("p"), false)];
    let resumed = positions(&[], None);
    let resume = reconcile(&resumed, &listing, false, false).unwrap();
    assert_eq!(resume, Resume::default());
    for s in &listing {
        assert_eq!(
            resume.start_of(&s.id, resumed.position(&s.id)),
            ShardStart::TrimHorizon
        );
    }
}

#[test]
fn a_fresh_latest_start_skips_closed_shards_and_reads_open_ones_at_latest() {
    let since = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let listing = [
        shard("old", None, true),
        shard("old-child", Some("old"), true),
        shard("open", Some("old-child"), false),
        shard("other", None, false),
    ];
    let resumed = positions(&[], Some(ShardPosition::LatestSince(since)));
    let resume = reconcile(&resumed, &listing, true, false).unwrap();
    assert_eq!(resume.done, set(&["old", "old-child"]));
    assert_eq!(resume.at_latest, set(&["open", "other"]));
    // `old` needs no entry: its closed child's entry implies it.
    assert_eq!(
        resume.edits,
        [(Arc::from("old-child"), Some(ShardPosition::Finished))]
    );
    let latest = ShardStart::Latest {
        since: 1_800_000_000,
    };
    assert_eq!(resume.start_of("open", resumed.position("open")), latest);
    // A shard born after the start: from the trim horizon, skipping records before it.
    assert_eq!(
        resume.start_of("born-later", resumed.position("born-later")),
        ShardStart::Since(1_800_000_000)
    );
}

#[test]
fn finished_ancestors_left_out_of_a_checkpoint_are_inferred() {
    let listing = [
        shard("grandparent", None, true),
        shard("parent", Some("grandparent"), true),
        shard("child", Some("parent"), false),
        shard("sibling", Some("parent"), false),
        shard("unrelated", None, false),
    ];
    let resumed = positions(&[("child", ShardPosition::After(seq(5)))], None);
    let resume = reconcile(&resumed, &listing, false, false).unwrap();
    assert_eq!(resume.done, set(&["grandparent", "parent"]));
    assert!(resume.edits.is_empty() && resume.gaps.is_empty());
    assert_eq!(
        resume.start_of("child", resumed.position("child")),
        ShardStart::After(seq(5))
    );
    for id in ["sibling", "unrelated"] {
        assert_eq!(
            resume.start_of(id, resumed.position(id)),
            ShardStart::TrimHorizon
        );
    }
}

#[test]
fn a_resumed_latest_checkpoint_reads_unlisted_shards_since_its_start() {
    let since = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let listing = [shard("a", None, false), shard("b", None, false)];
    let resumed = positions(
        &[("a", ShardPosition::After(seq(9)))],
        Some(ShardPosition::LatestSince(since)),
    );
    let resume = reconcile(&resumed, &listing, false, false).unwrap();
    assert!(
        resume.at_latest.is_empty(),
        "LATEST is never asked for again"
    );
    assert_eq!(
        resume.start_of("b", resumed.position("b")),
        ShardStart::Since(1_700_000_000)
    );
}

#[test]
fn aged_out_shards_are_forgotten_when_finished_and_lost_otherwise() {
    let listing = [shard("live", None, false)];
    let resumed = positions(
        &[
            ("gone-finished", ShardPosition::Finished),
            ("gone-unread", ShardPosition::After(seq(7))),
            ("live", ShardPosition::After(seq(1))),
        ],
        None,
    );
    let err = reconcile(&resumed, &listing, false, false).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TrimmedData);
    assert_eq!(err.shard_id(), Some("gone-unread"));
    assert_eq!(err.sequence_number(), Some(&seq(7)));

    let resume = reconcile(&resumed, &listing, false, true).unwrap();
    assert_eq!(
        resume.edits,
        [
            (Arc::from("gone-finished"), None),
            (Arc::from("gone-unread"), None)
        ]
    );
    assert_eq!(
        resume.gaps,
        [Gap {
            shard_id: "gone-unread".into(),
            after: Some(seq(7))
        }]
    );
}

#[test]
fn an_aged_out_latest_shard_that_read_nothing_is_lost_too() {
    let since = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let resumed = positions(&[("gone", ShardPosition::LatestSince(since))], None);
    let err = reconcile(&resumed, &[], false, false).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TrimmedData);
    assert_eq!(err.sequence_number(), None);
}

/// What a consumer had done with one shard when it took its checkpoint.
#[derive(Clone, Debug, PartialEq)]
enum Done {
    Untouched,
    ReadTo(u64),
    Finished,
}

/// A lineage (shard `i`'s parent is some `j < i`), a consistent consumer state over it (a
/// shard has progress only once its parent is finished), and which shards aged out.
fn lineage_and_state() -> impl Strategy<Value = (Vec<Option<usize>>, Vec<Done>, Vec<bool>)> {
    (1usize..40).prop_flat_map(|n| {
        (
            proptest::collection::vec(proptest::option::weighted(0.7, any::<usize>()), n),
            proptest::collection::vec(0u8..3, n),
            proptest::collection::vec(1u64..1000, n),
            proptest::collection::vec(proptest::bool::weighted(0.15), n),
        )
            .prop_map(|(parents, picks, seqs, dropped)| {
                let parents: Vec<Option<usize>> = parents
                    .iter()
                    .enumerate()
                    .map(|(i, p)| p.filter(|_| i > 0).map(|p| p % i))
                    .collect();
                let mut state: Vec<Done> = Vec::with_capacity(parents.len());
                for (i, parent) in parents.iter().enumerate() {
                    let ready = parent.is_none_or(|p| state[p] == Done::Finished);
                    state.push(match picks[i] {
                        _ if !ready => Done::Untouched,
                        0 => Done::Untouched,
                        1 => Done::ReadTo(seqs[i]),
                        _ => Done::Finished,
                    });
                }
                // Shards age out oldest first: a shard is gone only if its parent is too.
                let mut gone = vec![false; parents.len()];
                for (i, parent) in parents.iter().enumerate() {
                    gone[i] = dropped[i] && parent.is_none_or(|p| gone[p]);
                }
                (parents, state, gone)
            })
    })
}

proptest! {
    /// A checkpoint cut the way the stream cuts it (a finished shard leaves once a child has a
    /// position), reconciled with any listing, resumes every listed shard exactly where the
    /// consumer was; a shard that aged out is forgotten if it was finished, and is reported
    /// (an error, or a gap under the skip policy) if it had records left.
    #[test]
    fn resuming_restores_every_shard(
        (parents, state, dropped) in lineage_and_state(),
        skip in any::<bool>(),
    ) {
        let id = |i: usize| -> Arc<str> { Arc::from(format!("s{i:02}")) };
        let mut token: HashMap<usize, ShardPosition> = HashMap::new();
        for (i, done) in state.iter().enumerate() {
            let position = match done {
                Done::Untouched => continue,
                Done::ReadTo(n) => ShardPosition::After(seq(*n)),
                Done::Finished => ShardPosition::Finished,
            };
            token.insert(i, position);
        }
        for (i, parent) in parents.iter().enumerate() {
            if let Some(p) = parent.filter(|_| token.contains_key(&i)) {
                token.remove(&p);
            }
        }
        let map = token.iter().map(|(i, pos)| (id(*i), pos.clone())).collect();
        let resumed = Positions::new(ARN.into(), map, None);
        let listing: Vec<ShardInfo> = (0..parents.len())
            .filter(|i| !dropped[*i])
            .map(|i| ShardInfo { id: id(i), parent: parents[i].map(id), closed: false })
            .collect();

        let lost: Vec<usize> = (0..parents.len())
            .filter(|i| dropped[*i] && matches!(token.get(i), Some(ShardPosition::After(_))))
            .collect();
        let resume = match reconcile(&resumed, &listing, false, skip) {
            Err(e) => {
                prop_assert!(!skip && !lost.is_empty(), "unexpected error {e:?}");
                prop_assert_eq!(e.kind(), ErrorKind::TrimmedData);
                prop_assert_eq!(e.shard_id(), Some(&*id(lost[0])));
                return Ok(());
            }
            Ok(resume) => resume,
        };
        prop_assert!(skip || lost.is_empty(), "aged-out records lost silently: {lost:?}");
        let gaps: Vec<String> = resume.gaps.iter().map(|g| g.shard_id.clone()).collect();
        let expected_gaps: Vec<String> = lost.iter().map(|i| id(*i).to_string()).collect();
        prop_assert_eq!(gaps, expected_gaps);
        for s in &listing {
            let i: usize = s.id[1..].parse().unwrap();
            let start = resume.start_of(&s.id, resumed.position(&s.id));
            match &state[i] {
                Done::Finished => prop_assert!(resume.done.contains(&s.id), "{} not done", s.id),
                Done::ReadTo(n) => {
                    prop_assert!(!resume.done.contains(&s.id));
                    prop_assert_eq!(start, ShardStart::After(seq(*n)));
                }
                Done::Untouched => {
                    prop_assert!(!resume.done.contains(&s.id), "{} skipped unread", s.id);
                    prop_assert_eq!(start, ShardStart::TrimHorizon);
                }
            }
        }
        // Only shards of the checkpoint that are no longer listed are edited, and only away.
        for (shard, edit) in &resume.edits {
            prop_assert!(edit.is_none());
            prop_assert!(!listing.iter().any(|s| &s.id == shard));
        }
    }
}
