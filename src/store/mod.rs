//! Durable checkpoints: the [`CheckpointStore`] trait and its implementations.
//!
//! - [`MemoryStore`]: in the process, for tests and for consumers that may start over.
//! - [`FileStore`]: one checkpoint per file, replaced atomically and synced to disk.
//! - `DynamoDbStore` (feature `dynamodb-store`): one item per stream in a DynamoDB table,
//!   with conditional writes so that two owners of a stream cannot overwrite each other.
//!
//! [`ChangeStreamBuilder::resume_from_store`](crate::ChangeStreamBuilder::resume_from_store) resumes from a store in one call and
//! [`Committer`](crate::Committer) saves to one as events are processed.

use std::future::Future;
use std::sync::Arc;

use crate::checkpoint::Checkpoint;
use crate::error::{Error, ErrorKind, Result};

#[cfg(feature = "dynamodb-store")]
pub(crate) mod dynamodb;
mod file;
mod memory;

#[cfg(feature = "dynamodb-store")]
#[cfg_attr(docsrs, doc(cfg(feature = "dynamodb-store")))]
pub use dynamodb::DynamoDbStore;
pub use file::FileStore;
pub use memory::MemoryStore;

/// Somewhere to keep a stream's [`Checkpoint`] across restarts.
///
/// The rule that makes a consumer lose nothing: **save a checkpoint only after the event it
/// came from has been processed** (its effects are durable). After a crash the stream resumes
/// right after the last saved event, so events processed after the last save are delivered
/// again: delivery is at least once, and processing should be idempotent. The
/// [`Committer`](crate::Committer) follows that rule for you.
///
/// Implementations are shared between tasks (`Send + Sync`, methods take `&self`) and their
/// futures are `Send`. The trait is implemented for `&S`, `Arc<S>` and `Box<S>` of any store
/// `S`, so a store can be lent to a [`Committer`](crate::Committer) and still be used
/// elsewhere.
///
/// # Implementing a store
/// Write the checkpoint's text form ([`Display`](std::fmt::Display), or serde), parse it
/// back with [`FromStr`](std::str::FromStr), and report failures with [`Error::store`] and
/// [`Error::conflict`].
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::{Mutex, PoisonError};
/// use dynamodb_stream::{Checkpoint, CheckpointStore, Result};
///
/// /// Keeps checkpoints as text, as a database column would.
/// #[derive(Default)]
/// struct TextStore(Mutex<HashMap<String, String>>);
///
/// impl CheckpointStore for TextStore {
///     async fn load(&self, stream_arn: &str) -> Result<Option<Checkpoint>> {
///         let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
///         map.get(stream_arn).map(|text| text.parse()).transpose()
///     }
///
///     async fn save(&self, checkpoint: &Checkpoint) -> Result<()> {
///         let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
///         map.insert(checkpoint.stream_arn().to_owned(), checkpoint.to_string());
///         Ok(())
///     }
/// }
/// ```
pub trait CheckpointStore: Send + Sync {
    /// The last checkpoint saved for the stream `stream_arn`, or `None` if there is none.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidCheckpoint`] when what is stored cannot be read as a checkpoint
    /// (empty, truncated, corrupt), [`ErrorKind::CheckpointMismatch`] when it belongs to
    /// another stream, [`ErrorKind::Store`] when the store cannot be read. The message names
    /// the store's location. Loading never changes what is stored.
    fn load(&self, stream_arn: &str) -> impl Future<Output = Result<Option<Checkpoint>>> + Send;

    /// Saves `checkpoint` as the position of its stream ([`Checkpoint::stream_arn`]),
    /// replacing the previous one. When this returns `Ok`, a later [`load`](Self::load)
    /// returns it, even after a crash of this process.
    ///
    /// # Errors
    /// [`ErrorKind::Store`] when the store cannot be written, [`ErrorKind::Conflict`] when
    /// another owner has saved a position for the stream (stores that track ownership);
    /// stores that hold one stream may refuse a checkpoint of another with
    /// [`ErrorKind::CheckpointMismatch`]. After an error the previous checkpoint is intact.
    fn save(&self, checkpoint: &Checkpoint) -> impl Future<Output = Result<()>> + Send;

    /// The consumer is done with the store: called by [`Committer::close`](crate::Committer::close)
    /// after its last save. A store that holds leases hands them over here
    /// ([`LeaseTable`](crate::lease::LeaseTable), feature `dynamodb-store`); the others have
    /// nothing to do, which is the default.
    ///
    /// # Errors
    /// The store's error; what was saved stays saved.
    fn close(&self) -> impl Future<Output = Result<()>> + Send {
        std::future::ready(Ok(()))
    }
}

/// A store behind a reference or a pointer is that store.
macro_rules! forward_store {
    ($($wrapper:ty),+) => {$(
        impl<S: CheckpointStore> CheckpointStore for $wrapper {
            fn load(&self, stream_arn: &str) -> impl Future<Output = Result<Option<Checkpoint>>> + Send {
                (**self).load(stream_arn)
            }

            fn save(&self, checkpoint: &Checkpoint) -> impl Future<Output = Result<()>> + Send {
                (**self).save(checkpoint)
            }

            fn close(&self) -> impl Future<Output = Result<()>> + Send {
                (**self).close()
            }
        }
    )+};
}

forward_store!(&S, Arc<S>, Box<S>);

/// The error for a stored checkpoint of another stream than the one asked for.
pub(crate) fn mismatch(location: &str, found: &str, wanted: &str) -> Error {
    Error::new(
        ErrorKind::CheckpointMismatch,
        format!("{location} holds a checkpoint of stream {found}, not of {wanted}"),
    )
}

/// Parses stored text, naming the store's location in the error.
pub(crate) fn parse(location: &str, text: &str) -> Result<Checkpoint> {
    text.parse::<Checkpoint>().map_err(|e| e.at(location))
}
