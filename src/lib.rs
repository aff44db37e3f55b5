//! A DynamoDB Stream as one ordered [`futures::Stream`] of [`ChangeEvent`]s, with a
//! [`Checkpoint`] on every event.
//!
//! Each shard of the stream is read as a stream of pages; a merging combinator follows the
//! shard lineage, so a parent shard is fully delivered before its children start, and yields
//! one `Stream<Item = Result<ChangeEvent>>`. Every event carries the checkpoint that resumes
//! the whole stream right after it.
//!
//! # Quick start
//! ```no_run
//! use dynamodb_stream::{ChangeStream, StartPosition};
//! use futures::StreamExt;
//!
//! #[derive(serde::Deserialize)]
//! struct Order { id: String, total: u64 }
//!
//! # async fn run(stream_arn: &str) -> Result<(), dynamodb_stream::Error> {
//! let mut stream = ChangeStream::from_env(stream_arn)
//!     .await
//!     .start(StartPosition::TrimHorizon)
//!     .build()?;
//! while let Some(event) = stream.next().await {
//!     let event = event?;
//!     if let Some(order) = event.new_image::<Order>()? {
//!         println!("{} {}: {}", event.kind(), order.id, order.total);
//!     }
//!     // After processing: persist event.checkpoint() whenever it suits you.
//! }
//! # Ok(()) }
//! ```
//! With a client of your own: `ChangeStream::builder(client, stream_arn)`.
//!
//! # Ordering
//! - Events of one shard come in the shard's order (by sequence number).
//! - A child shard is started only after its parent was read to its end
//!   (`NextShardIterator` absent) **and every record of the parent was returned by the
//!   stream**. Since all writes to one item go to one shard lineage, **every item's changes
//!   arrive in the order they were made.**
//! - Children start at `TRIM_HORIZON`; only the shards open when a fresh consumer starts at
//!   [`StartPosition::Latest`] begin at `LATEST`. A shard whose parent is no longer listed
//!   (aged out) is a root.
//! - Sibling shards, and unrelated shards, have no order between them: ready shards are read
//!   concurrently and their pages are interleaved in the order they arrive, so no shard
//!   starves and no busy shard waits on an idle one. Each shard reads at most
//!   [`read_ahead`](ChangeStreamBuilder::read_ahead) pages (default 1) ahead of the consumer:
//!   a slow consumer applies backpressure and memory stays bounded. On a multi-threaded
//!   tokio runtime each shard is read on its own task (see [`Readers`]), so the SDK's JSON
//!   parsing runs on the worker threads while the consumer handles events.
//! - There is no global order; never order events by their approximate creation time
//!   (rounded to the second).
//!
//! # Checkpoints
//! [`ChangeEvent::checkpoint`] holds **every** shard's position as of that event: the last
//! sequence number delivered in each shard and which shards are finished (a finished shard
//! whose child has a position is left out: the lineage implies it, and resuming infers it). Restarting with
//! [`ChangeStreamBuilder::resume_from`] continues exactly after that event in every shard, so
//! saving every *k*-th checkpoint, or one every few seconds, loses nothing: a restart
//! re-delivers only what came after the last save.
//!
//! Delivery is **at least once**: save a checkpoint *after* the event (and everything before
//! it) has been processed. Tokens cost O(1) per event (they share a persistent map), hold
//! the shards being read rather than a day of rollovers, and have a checksummed text form for files
//! and logs. A checkpoint of another stream is refused with [`ErrorKind::CheckpointMismatch`].
//!
//! # Errors
//! Faults the service documents as transient are handled inside:
//! - an expired shard iterator (15 minutes) is replaced silently, from the last sequence
//!   number read (never from `LATEST`);
//! - throttling (`LimitExceededException`), 5xx and transport failures are retried with
//!   exponential backoff and jitter beyond the SDK's own attempts, within a bounded budget
//!   ([`ChangeStreamBuilder::retries`]: by default 10 retries, about a minute);
//! - `DescribeStream` is paginated to the end and paced (by default at most 5 calls a second
//!   per stream and process, half the service's shared limit); the children of a finished
//!   shard are found with the `CHILD_SHARDS` filter, with the full listing as a fallback;
//! - empty pages are normal, never taken for the end of a shard; idle shards are polled every
//!   250 ms, backing off to 2 s, and a shard with a backlog is read back to back.
//!
//! Everything else reaches you as an [`Error`] and **ends the stream**: trimmed data
//! ([`ErrorKind::TrimmedData`]: a position older than the 24-hour retention, data loss, with
//! the shard and sequence number; [`TrimPolicy::SkipToTrimHorizon`] goes on instead and
//! reports the gap on the next event and in [`Status::gaps`], never only in a log), a missing stream, throttling or service failures past the
//! budget, invalid requests, malformed records. [`ErrorKind::Decode`] is the exception: it
//! comes only from decoding one event's images and concerns that event alone. Nothing
//! panics.
//!
//! # Saving checkpoints
//! Any [`CheckpointStore`] holds checkpoints across restarts: [`MemoryStore`], [`FileStore`]
//! (atomic and durable: a crash leaves the old or the new checkpoint, never a torn one) and,
//! with the `dynamodb-store` feature, `DynamoDbStore` (conditional writes: two processes that
//! both believe they own the stream get [`ErrorKind::Conflict`], not a silent overwrite).
//! [`ChangeStreamBuilder::resume_from_store`] resumes in one call, and a [`Committer`] wraps
//! the stream to save the checkpoint of the events you [`ack`](Committer::ack) every *n* acks
//! or *t* seconds, and on [`close`](Committer::close).
//!
//! # Observability
//! Shard lifecycle (started, read to its end, children found) and retries are `tracing`
//! events; [`ChangeStream::status`] is a cheap snapshot of every shard's state, records
//! delivered, last sequence number and lag.
//!
//! # Features
//! - `aws-config` (default): [`ChangeStream::from_env`], a client from the environment.
//! - `dynamodb-store`: `DynamoDbStore`, checkpoints in a DynamoDB table.
//! - `test-util`: [`sim`], an in-process DynamoDB Streams simulator that plugs into the real
//!   SDK client as its HTTP transport, to test your own consumer against shard splits,
//!   iterator expiry, trims and throttling.
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
mod store;

pub use builder::ChangeStreamBuilder;
pub use checkpoint::{Checkpoint, ShardPosition};
pub use commit::Committer;
pub use config::{Readers, StartPosition, TrimPolicy};
pub use error::{Error, ErrorKind, Result};
pub use event::{Change, ChangeEvent, EventKind, Item};
pub use futures::Stream;
pub use sequence::SequenceNumber;
#[cfg(feature = "dynamodb-store")]
#[cfg_attr(docsrs, doc(cfg(feature = "dynamodb-store")))]
pub use store::DynamoDbStore;
pub use store::{CheckpointStore, FileStore, MemoryStore};
pub use stream::ChangeStream;
