#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The pure core: no I/O, no async. (The README's Layout gives every room's dependencies.)
mod checkpoint;
mod config;
mod error;
mod event;
mod lineage;
mod raw;
mod retry;
mod sequence;
pub mod status;

// The drivers: builder -> stream -> merge -> shard -> api -> core.
mod api;
mod budget;
mod builder;
mod filter;
mod merge;
mod shard;
mod stream;
mod telemetry;

// The adapters at the edges.
mod commit;
#[cfg(feature = "lambda")]
#[cfg_attr(docsrs, doc(cfg(feature = "lambda")))]
pub mod lambda;
#[cfg(feature = "dynamodb-store")]
#[cfg_attr(docsrs, doc(cfg(feature = "dynamodb-store")))]
pub mod lease;
mod process;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod sim;
pub mod store;

pub use builder::ChangeStreamBuilder;
pub use checkpoint::{Checkpoint, ShardPosition};
pub use commit::{Committer, HasCheckpoint};
pub use config::{Decoding, Readers, StartPosition, TrimPolicy};
pub use error::{Error, ErrorKind, Result};
pub use event::{Change, ChangeEvent, EventKind, Item};
pub use futures::Stream;
pub use process::{ChangeStreamExt, ProcessByKey};
pub use sequence::SequenceNumber;
pub use store::CheckpointStore;
pub use stream::ChangeStream;
