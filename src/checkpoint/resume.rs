//! What a checkpoint (or a fresh start) means for the shards listed when a consumer starts:
//! which shards need no reading, where each of the others begins, and what the running
//! positions must forget. Pure: the merge calls it once, on the first full listing.

use std::collections::HashSet;
use std::sync::Arc;

use super::{Positions, ShardPosition};
use crate::config::epoch_secs;
use crate::error::{Error, ErrorKind, Result};
use crate::lineage::ShardInfo;
use crate::sequence::SequenceNumber;
use crate::status::Gap;

/// Where a shard's reading begins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ShardStart {
    TrimHorizon,
    /// At `LATEST` (only the shards open when a fresh consumer starts there); `since` is that
    /// moment in epoch seconds, used if the first iterator expires before anything was read.
    Latest {
        since: i64,
    },
    /// Right after a record already delivered.
    After(SequenceNumber),
    /// At `TRIM_HORIZON`, skipping records created before `since` (epoch seconds): a `LATEST`
    /// start that is being resumed, or a shard born after it; every shard of a start at a
    /// timestamp.
    Since(i64),
    /// From a `LATEST` iterator taken when a lease group started at `since`; if it expired
    /// before anything was read, as [`Since`](Self::Since).
    #[cfg_attr(not(feature = "dynamodb-store"), allow(dead_code))]
    Iterator {
        iterator: String,
        since: i64,
    },
}

/// The reconciliation of the positions being resumed with the stream's first listing.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Resume {
    /// Shards that need no reading: finished in the checkpoint, finished ancestors the
    /// checkpoint leaves out (a child only starts after its parent finished), and shards
    /// already closed when a fresh consumer starts at `LATEST`.
    pub(crate) done: HashSet<Arc<str>>,
    /// The shards open when a fresh consumer starts at `LATEST`: read from `LATEST`.
    pub(crate) at_latest: HashSet<Arc<str>>,
    /// Changes to the running positions, by shard id: `None` forgets the shard.
    pub(crate) edits: Vec<(Arc<str>, Option<ShardPosition>)>,
    /// Checkpointed shards that aged out of the stream unread (trim policy "skip").
    pub(crate) gaps: Vec<Gap>,
}

impl Resume {
    /// Where shard `id` begins, given its position in the running positions.
    pub(crate) fn start_of(&self, id: &str, position: Option<&ShardPosition>) -> ShardStart {
        match position {
            Some(ShardPosition::After(seq)) => ShardStart::After(seq.clone()),
            Some(ShardPosition::LatestSince(t)) if self.at_latest.contains(id) => {
                ShardStart::Latest {
                    since: epoch_secs(*t),
                }
            }
            Some(ShardPosition::LatestSince(t)) => ShardStart::Since(epoch_secs(*t)),
            Some(ShardPosition::Finished) | None => ShardStart::TrimHorizon,
        }
    }
}

/// Reconciles `resumed` (the positions a consumer starts with) with the stream's first full
/// `listing`.
///
/// `fresh_latest`: no checkpoint, start at `LATEST`. `skip_trimmed`: a checkpointed shard that
/// aged out unread is a reported gap rather than an error.
///
/// # Errors
/// [`ErrorKind::TrimmedData`] for a checkpointed, unfinished shard that is no longer listed:
/// its unread records aged out (unless `skip_trimmed`).
pub(crate) fn reconcile(
    resumed: &Positions,
    listing: &[ShardInfo],
    fresh_latest: bool,
    skip_trimmed: bool,
) -> Result<Resume> {
    let parents: std::collections::HashMap<&Arc<str>, Option<&Arc<str>>> =
        listing.iter().map(|s| (&s.id, s.parent.as_ref())).collect();
    let mut resume = Resume::default();
    // In shard order, so that which error or gap comes first does not depend on hashing.
    let mut entries: Vec<(&Arc<str>, &ShardPosition)> = resumed.listed().iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (id, position) in entries {
        if !parents.contains_key(id) {
            aged_out(&mut resume, id, position, skip_trimmed)?;
            continue;
        }
        if *position == ShardPosition::Finished {
            resume.done.insert(id.clone());
        }
        // The checkpoint leaves out finished shards once a descendant has a position.
        let mut parent = parents.get(id).copied().flatten();
        while let Some(p) = parent.filter(|p| resumed.get(p).is_none()) {
            resume.done.insert(p.clone());
            parent = parents.get(p).copied().flatten();
        }
    }
    if fresh_latest {
        // A closed shard with a closed child needs no entry: the child's implies it.
        let closed_parents: HashSet<&Arc<str>> = listing
            .iter()
            .filter(|s| s.closed)
            .filter_map(|s| s.parent.as_ref())
            .collect();
        for shard in listing {
            if !shard.closed {
                resume.at_latest.insert(shard.id.clone());
                continue;
            }
            // Closed before the start: nothing new will ever arrive in it.
            resume.done.insert(shard.id.clone());
            if !closed_parents.contains(&shard.id) {
                resume
                    .edits
                    .push((shard.id.clone(), Some(ShardPosition::Finished)));
            }
        }
    }
    Ok(resume)
}

/// A checkpointed shard the stream no longer lists: forgotten if it was finished; otherwise
/// its unread records are gone.
fn aged_out(
    resume: &mut Resume,
    id: &Arc<str>,
    position: &ShardPosition,
    skip_trimmed: bool,
) -> Result<()> {
    let after = match position {
        ShardPosition::Finished => {
            resume.edits.push((id.clone(), None));
            return Ok(());
        }
        ShardPosition::After(seq) => Some(seq.clone()),
        ShardPosition::LatestSince(_) => None,
    };
    if skip_trimmed {
        tracing::warn!(shard = %id, "the checkpoint's shard aged out of the stream unread");
        resume.edits.push((id.clone(), None));
        resume.gaps.push(Gap {
            shard_id: id.to_string(),
            after,
        });
        return Ok(());
    }
    let message = match &after {
        Some(seq) => format!(
            "the checkpoint's shard is no longer in the stream: records after {seq} aged out unread"
        ),
        None => {
            "the checkpoint's shard is no longer in the stream: its records aged out unread".into()
        }
    };
    Err(Error::new(ErrorKind::TrimmedData, message)
        .with_shard(id.to_string())
        .with_sequence_number(after))
}

#[cfg(test)]
mod tests;
