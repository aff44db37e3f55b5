//! Where `tail` saves what it printed: the `--checkpoint` file (the crate's `FileStore`:
//! a temporary file, fsync, rename), or the lease table; and nothing without either.

use std::path::PathBuf;

use dynamodb_stream::lease::LeaseTable;
use dynamodb_stream::store::FileStore;
use dynamodb_stream::{Checkpoint, CheckpointStore};

use crate::{Failure, chain};

pub(crate) enum Saver {
    None,
    File(FileStore),
    Lease(LeaseTable),
}

impl Saver {
    pub(crate) fn file(path: Option<PathBuf>) -> Self {
        path.map_or(Self::None, |path| Self::File(FileStore::new(path)))
    }

    /// What the `--checkpoint` file holds for `arn` (a file of another stream, or a corrupt
    /// one, is an error, never a silent start from scratch).
    pub(crate) async fn load(&self, arn: &str) -> Result<Option<Checkpoint>, Failure> {
        match self {
            Self::File(store) => store.load(arn).await.map_err(|e| Failure::Fatal(chain(&e))),
            _ => Ok(None),
        }
    }

    pub(crate) async fn save(&self, checkpoint: &Checkpoint) -> Result<(), Failure> {
        let saved = match self {
            Self::None => return Ok(()),
            Self::File(store) => store.save(checkpoint).await,
            Self::Lease(lease) => lease.save(checkpoint).await,
        };
        saved.map_err(|e| Failure::Fatal(format!("cannot save the position: {}", chain(&e))))
    }

    /// After the last save: the lease table hands every shard over.
    pub(crate) async fn close(&self) -> Result<(), Failure> {
        if let Self::Lease(lease) = self {
            lease
                .close()
                .await
                .map_err(|e| Failure::Fatal(format!("cannot release the shards: {}", chain(&e))))?;
        }
        Ok(())
    }
}
