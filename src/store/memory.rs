//! [`MemoryStore`]: checkpoints in the process's memory.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use super::CheckpointStore;
use crate::checkpoint::Checkpoint;
use crate::error::Result;

/// Checkpoints kept in memory, one per stream ARN; clones share them.
///
/// Nothing survives the process: use it in tests, for consumers that may start over after a
/// restart, or to hand positions between streams of one process. Never fails.
///
/// # Recipe
/// ```no_run
/// use dynamodb_stream::{ChangeStream, Committer};
/// use dynamodb_stream::store::MemoryStore;
/// use futures::StreamExt;
///
/// # async fn run(client: aws_sdk_dynamodbstreams::Client, arn: &str) -> dynamodb_stream::Result<()> {
/// let store = MemoryStore::new();
/// let stream = ChangeStream::builder(client.clone(), arn)
///     .resume_from_store(&store)
///     .await?
///     .build()?;
/// let mut events = Committer::new(stream, store.clone()).every(100);
/// while let Some(event) = events.next().await {
///     let event = event?;
///     // ... process the event ...
///     events.ack(&event);
/// #   break;
/// }
/// events.close().await?;
///
/// // Later in the same process: carry on where the first stream stopped.
/// let stream = ChangeStream::builder(client, arn)
///     .resume_from_store(&store)
///     .await?
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct MemoryStore {
    checkpoints: Arc<Mutex<HashMap<String, Checkpoint>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The checkpoint saved for `stream_arn`, without going through the async trait.
    pub fn get(&self, stream_arn: &str) -> Option<Checkpoint> {
        self.lock().get(stream_arn).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Checkpoint>> {
        // Every update is a single insert: a panic elsewhere cannot leave the map half-changed.
        self.checkpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("streams", &self.lock().len())
            .finish()
    }
}

impl CheckpointStore for MemoryStore {
    async fn load(&self, stream_arn: &str) -> Result<Option<Checkpoint>> {
        Ok(self.get(stream_arn))
    }

    async fn save(&self, checkpoint: &Checkpoint) -> Result<()> {
        self.lock()
            .insert(checkpoint.stream_arn().to_owned(), checkpoint.clone());
        Ok(())
    }
}
