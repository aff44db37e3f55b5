//! placeholder docs
#![forbid(unsafe_code)]

mod checkpoint;
mod discovery;
mod error;
mod event;
mod lineage;
mod merge;
mod retry;
mod sequence;
mod shard;
mod stream;

#[cfg(feature = "test-util")]
pub mod sim;

pub use checkpoint::{Checkpoint, ShardPosition};
pub use error::{Error, ErrorKind, Result};
pub use event::{ChangeEvent, EventKind, Item};
pub use lineage::ShardState;
pub use sequence::SequenceNumber;
pub use stream::{ChangeStream, ChangeStreamBuilder, ShardStatus, StartPosition, Status};
