//! The lease table as a [`CheckpointStore`]: fenced per-shard saves, and whole-stream
//! checkpoints assembled from it or imported into it (migration both ways).

use std::sync::Arc;

use futures::future::join_all;

use super::model::{Item, Op, Outcome, Owner, ShardLease, StartMark};
use super::{LeaseTable, Shared};
use crate::api::{Context, Failure, with_retries};
use crate::checkpoint::resume::reconcile;
use crate::checkpoint::{Checkpoint, Positions, ShardPosition};
use crate::config::{Options, at_epoch_secs};
use crate::error::{Error, ErrorKind, Result};
use crate::store::CheckpointStore;

impl Shared {
    /// One write through the retry loop, with a lost reply recognised: a refused write whose
    /// effect is in the item counts as applied.
    pub(super) async fn write(&self, pk: &str, op: Op) -> Result<Outcome, Failure> {
        let retry = self.settings().retry;
        let what = op.name();
        let outcome =
            with_retries(&retry, what, None, || self.backend.write(pk, op.clone())).await?;
        Ok(match outcome {
            Outcome::Refused(current) if op.applied_in(current.as_ref()) => {
                Outcome::Applied(current)
            }
            other => other,
        })
    }

    pub(super) async fn read_shards(&self, pk: &str) -> Result<Vec<ShardLease>, Failure> {
        let retry = self.settings().retry;
        with_retries(&retry, "lease table shard read", None, || {
            self.backend.shards(pk)
        })
        .await
    }

    /// Saves the positions of `checkpoint` that changed, in parallel, each fenced by the
    /// epoch it was read under.
    async fn save(&self, checkpoint: &Checkpoint) -> Result<()> {
        let Some(attached) = self.lock().attached.clone() else {
            return Err(Error::new(
                ErrorKind::Config,
                "the lease table is not attached to a stream yet: nothing of it can be saved",
            ));
        };
        if checkpoint.stream_arn() != &*attached.stream_arn {
            return Err(crate::store::mismatch(
                "the lease table",
                checkpoint.stream_arn(),
                &attached.stream_arn,
            ));
        }
        let mut writes = Vec::new();
        for (shard, position) in checkpoint.positions() {
            let Some(epoch) = checkpoint.epoch(shard) else {
                return Err(Error::new(
                    ErrorKind::Config,
                    "this checkpoint was not read through a lease table (it holds no lease \
                     epochs): use LeaseTable::seed to import one",
                ));
            };
            let shard: Arc<str> = Arc::from(shard);
            if self.lock().saved.get(&shard) == Some(position) {
                continue;
            }
            let Some(op) = save_op(&shard, position, epoch, &attached.me) else {
                continue;
            };
            let pk = attached.pk.as_str();
            writes.push(async move { (shard, position.clone(), self.write(pk, op).await) });
        }
        let mut first_error = None;
        for (shard, position, result) in join_all(writes).await {
            match result {
                Ok(Outcome::Applied(_)) => self.saved(shard, position),
                Ok(Outcome::Refused(_)) => {
                    tracing::info!(shard = %shard, "not saved: the shard has another holder now");
                    self.lock().status.refused_saves += 1;
                }
                Err(failure) => {
                    first_error.get_or_insert(failure.error);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Records that the table holds `position` for `shard`.
    pub(super) fn saved(&self, shard: Arc<str>, position: ShardPosition) {
        let mut state = self.lock();
        if position == ShardPosition::Finished {
            state.finished.push(shard.clone());
            state.awaiting_save.remove(&shard);
            drop(state);
            self.wake.notify_one();
            return;
        }
        state.saved.insert(shard, position);
    }

    fn partition(&self, stream_arn: &str) -> String {
        format!("{}|{stream_arn}", self.settings().group)
    }
}

/// The write that saves `position` of a shard held at `epoch` (`None`: nothing to save, no
/// event of it was delivered).
fn save_op(shard: &Arc<str>, position: &ShardPosition, epoch: u64, me: &Owner) -> Option<Op> {
    let shard = shard.clone();
    let me = me.clone();
    match position {
        ShardPosition::After(seq) => Some(Op::Checkpoint {
            shard,
            epoch,
            me,
            seq: seq.clone(),
        }),
        ShardPosition::Finished => Some(Op::Finish { shard, epoch, me }),
        _ => None,
    }
}

/// The items a seeded group starts with: every listed shard at its checkpointed position,
/// finished (listed or implied) ones done.
fn seed_items(
    listing: &[crate::lineage::ShardInfo],
    done: &std::collections::HashSet<Arc<str>>,
    positions: &Positions,
) -> Vec<ShardLease> {
    listing
        .iter()
        .map(|info| {
            let done = done.contains(&info.id);
            let pos = if done {
                Some(ShardPosition::Finished)
            } else {
                positions.position(&info.id).cloned()
            };
            ShardLease::new(info, pos, done)
        })
        .collect()
}

impl LeaseTable {
    /// The whole stream's position as the table holds it: every shard's saved position
    /// (finished shards as finished), for a consumer that reads the stream alone again
    /// ([`resume_from`](crate::ChangeStreamBuilder::resume_from)). `None` when the group has
    /// never seen the stream.
    ///
    /// # Errors
    /// [`ErrorKind::Store`] when the table cannot be read.
    pub async fn snapshot(&self, stream_arn: &str) -> Result<Option<Checkpoint>> {
        let shared = self.shared();
        let pk = shared.partition(stream_arn);
        let retry = shared.settings().retry;
        let control = with_retries(&retry, "lease table read", None, || {
            shared.backend.control(&pk)
        })
        .await
        .map_err(|f| f.error)?;
        let Some(meta) = control.meta else {
            return Ok(None);
        };
        let shards = shared.read_shards(&pk).await.map_err(|f| f.error)?;
        let map = shards
            .into_iter()
            .filter_map(|s| match (s.done, s.pos) {
                (true, _) => Some((s.shard, ShardPosition::Finished)),
                (false, pos) => pos.map(|pos| (s.shard, pos)),
            })
            .collect();
        let unlisted = match meta.start {
            StartMark::TrimHorizon => None,
            StartMark::LatestSince(t) => Some(ShardPosition::LatestSince(at_epoch_secs(t))),
        };
        Ok(Some(
            Positions::new(Arc::from(stream_arn), map, unlisted).checkpoint(),
        ))
    }

    /// Imports a whole-stream checkpoint (from a consumer that read the stream alone, or from
    /// [`snapshot`](Self::snapshot)) for a group that has not seen the stream yet: every shard
    /// the stream lists (through `streams`) gets an item at the checkpoint's position, its
    /// finished ancestors included.
    ///
    /// # Errors
    /// [`ErrorKind::Conflict`] when the group already reads the stream; the errors of
    /// resuming the checkpoint ([`ErrorKind::TrimmedData`] for a shard that aged out unread);
    /// [`ErrorKind::Store`] when the table cannot be written.
    pub async fn seed(
        &self,
        streams: &aws_sdk_dynamodbstreams::Client,
        checkpoint: &Checkpoint,
    ) -> Result<()> {
        let shared = self.shared();
        let arn: Arc<str> = Arc::from(checkpoint.stream_arn());
        let ctx = Context::new(streams.clone(), arn.clone(), Options::default());
        let listing = ctx.list_all().await?;
        let positions = Positions::new(
            arn.clone(),
            checkpoint.to_map(),
            checkpoint.unlisted().cloned(),
        );
        let resume = reconcile(&positions, &listing, false, false)?;
        let pk = shared.partition(&arn);
        let start = match checkpoint.unlisted() {
            Some(ShardPosition::LatestSince(t)) => {
                StartMark::LatestSince(crate::config::epoch_secs(*t))
            }
            _ => StartMark::TrimHorizon,
        };
        match shared
            .write(&pk, Op::CreateMeta(start))
            .await
            .map_err(|f| f.error)?
        {
            Outcome::Applied(_) => {}
            Outcome::Refused(_) => {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "the lease group already reads {arn}: seeding would overwrite its positions"
                    ),
                ));
            }
        }
        for item in seed_items(&listing, &resume.done, &positions) {
            if let Outcome::Refused(Some(Item::Shard(found))) = shared
                .write(&pk, Op::CreateShard(item))
                .await
                .map_err(|f| f.error)?
            {
                tracing::debug!(shard = %found.shard, "already in the lease table");
            }
        }
        Ok(())
    }
}

impl CheckpointStore for LeaseTable {
    /// The whole stream's checkpoint as the table holds it ([`LeaseTable::snapshot`]).
    async fn load(&self, stream_arn: &str) -> Result<Option<Checkpoint>> {
        self.snapshot(stream_arn).await
    }

    /// Saves each position of a leased stream's checkpoint that changed, fenced by the lease
    /// it was read under; a shard saved as finished lets its children be taken. A shard that
    /// moved to another holder is skipped and counted
    /// ([`LeaseStatus::refused_saves`](super::LeaseStatus::refused_saves)), not an error.
    async fn save(&self, checkpoint: &Checkpoint) -> Result<()> {
        self.shared().save(checkpoint).await
    }

    /// Hands every shard over and leaves the group ([`LeaseTable::close`]).
    async fn close(&self) -> Result<()> {
        LeaseTable::close(self).await
    }
}
