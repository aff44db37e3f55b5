#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The pure core: no I/O, no async.
mod checkpoint;
mod error;
mod event;
mod lineage;
mod retry;
mod sequence;
pub mod status;

// The drivers, in dependency order: each uses only the ones below it, and the core.
mod api;
mod builder;
mod config;
mod merge;
mod shard;
mod stream;

// The adapters at the edges.
mod commit;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod sim;
pub mod store;

pub use builder::ChangeStreamBuilder;
pub use checkpoint::{Checkpoint, ShardPosition};
pub use commit::Committer;
pub use config::{Readers, StartPosition, TrimPolicy};
pub use error::{Error, ErrorKind, Result};
pub use event::{Change, ChangeEvent, EventKind, Item};
pub use futures::Stream;
pub use sequence::SequenceNumber;
pub use store::CheckpointStore;
pub use stream::ChangeStream;
