//! An in-process model of one DynamoDB stream, served to the real SDK client.
//!
//! [`Simulator`] holds one table and its stream: shards with parent links, strictly increasing
//! 21 to 40-digit sequence numbers, pagination, iterator expiry, trims, throttling and
//! scripted faults. [`Simulator::client`] returns an `aws_sdk_dynamodbstreams::Client` whose
//! HTTP transport calls the simulator directly, so request signing, response parsing, error
//! mapping and retries are the SDK's own, with no socket.
//!
//! Time is tokio's clock: under `#[tokio::test(start_paused = true)]` iterator expiry (15
//! minutes), hidden shards and SDK retry backoff all run in virtual time.
//!
//! ```
//! use dynamodb_stream::sim::{AttributeValue, Item, Simulator};
//! use aws_sdk_dynamodbstreams::types::ShardIteratorType;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sim = Simulator::new();
//! sim.put_item(Item::from([("pk".to_string(), AttributeValue::S("a".into()))]));
//! let client = sim.client();
//! let shard = &sim.shards()[0].shard_id;
//! let iterator = client
//!     .get_shard_iterator()
//!     .stream_arn(sim.stream_arn())
//!     .shard_id(shard)
//!     .shard_iterator_type(ShardIteratorType::TrimHorizon)
//!     .send()
//!     .await?
//!     .shard_iterator;
//! let page = client.get_records().set_shard_iterator(iterator).send().await?;
//! assert_eq!(page.records().len(), 1);
//! assert!(page.next_shard_iterator().is_some()); // the shard is still open
//! # Ok(())
//! # }
//! ```
//!
//! Documented gaps: `AT_TIMESTAMP` iterators are refused with `ValidationException`; only
//! one stream exists (`ListStreams` lists it); global-table replicas are not modelled.

mod api;
mod builder;
mod control;
mod hash;
mod iter;
mod json;
mod model;
mod routing;
mod seq;
mod shard;
mod table;
mod transport;
mod types;
mod wire;

#[cfg(feature = "dynamodb-store")]
#[cfg_attr(docsrs, doc(cfg(feature = "dynamodb-store")))]
pub use crate::lease::memory::{LeaseCalls, LeaseFault, LeaseWrite, MemoryLeaseTable};
pub use aws_sdk_dynamodbstreams::types::{AttributeValue, StreamViewType};
pub use builder::SimulatorBuilder;
pub use seq::SequenceNumbers;
pub use types::{
    Appended, CallCounts, Fault, Operation, RecordKind, SimError, SimErrorKind, SimRecord, SimShard,
};

use model::Model;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;
use tokio::time::Instant;
use wire::{ApiError, StreamMeta};

/// A DynamoDB item: attribute names to values.
pub use crate::event::Item;

/// A simulated DynamoDB stream (one table), shared by every clone.
///
/// Cheap to clone, `Send + Sync`; every method is synchronous and holds an internal lock
/// only briefly. No method panics on bad input: unknown shard ids are ignored with a
/// `tracing` warning (or reported, for [`Simulator::append`]).
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

struct Inner {
    /// Process-wide number of this simulator; iterators carry it.
    id: u64,
    meta: StreamMeta,
    state: Mutex<Model>,
    /// The creation time, in epoch seconds, of the records written from now on; `WALL_CLOCK`
    /// for the wall clock.
    created_at: AtomicU64,
    /// Seconds the records written from now on are stamped before that time
    /// (`Simulator::backdate`).
    backdate: AtomicU64,
}

impl fmt::Debug for Simulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulator")
            .field("stream_arn", &self.inner.meta.arn)
            .finish_non_exhaustive()
    }
}

impl Default for Simulator {
    fn default() -> Self {
        Simulator::new()
    }
}

/// `Inner::created_at` when records are stamped by the wall clock.
const WALL_CLOCK: u64 = u64::MAX;

/// Whole seconds since the Unix epoch: `ApproximateCreationDateTime` is rounded down.
pub(crate) fn epoch_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Simulator {
    /// A simulator with the default settings: see [`SimulatorBuilder`].
    pub fn new() -> Self {
        Simulator::builder().build()
    }

    /// A builder for a simulator with custom settings.
    pub fn builder() -> SimulatorBuilder {
        SimulatorBuilder::default()
    }

    pub(crate) fn from_parts(id: u64, meta: StreamMeta, model: Model) -> Self {
        Simulator {
            inner: Arc::new(Inner {
                id,
                meta,
                state: Mutex::new(model),
                created_at: AtomicU64::new(WALL_CLOCK),
                backdate: AtomicU64::new(0),
            }),
        }
    }

    /// Stamps the records written from now on (by every method that writes one) with this
    /// creation time, rounded down to the second as the service does, instead of the wall
    /// clock; `None` goes back to the wall clock. For tests of what depends on creation times
    /// (a start at a timestamp, lag), without waiting for real seconds to pass. An instant
    /// before the epoch counts as the epoch.
    pub fn set_creation_time(&self, at: Option<SystemTime>) {
        let secs = at.map_or(WALL_CLOCK, |t| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs().min(WALL_CLOCK - 1))
        });
        self.inner.created_at.store(secs, Ordering::Relaxed);
    }

    /// The creation time of a record written now, in epoch seconds.
    pub(crate) fn created_secs(&self) -> u64 {
        let at = match self.inner.created_at.load(Ordering::Relaxed) {
            WALL_CLOCK => epoch_secs(),
            pinned => pinned,
        };
        at.saturating_sub(self.inner.backdate.load(Ordering::Relaxed))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Model> {
        // A panic while holding the lock cannot leave the model half-updated in a way that
        // matters more than losing the simulator, so keep serving.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The stream ARN, unique per simulator in the process:
    /// `arn:aws:dynamodb:us-east-1:000000000000:table/<table>/stream/<label>`.
    pub fn stream_arn(&self) -> String {
        self.inner.meta.arn.clone()
    }

    /// The table name.
    pub fn table_name(&self) -> String {
        self.inner.meta.table.clone()
    }

    /// A streams client wired to this simulator: latest behaviour version, region
    /// `us-east-1`, static test credentials, endpoint `http://sim.invalid` (never contacted),
    /// standard retries (3 attempts) sleeping on tokio's clock.
    pub fn client(&self) -> aws_sdk_dynamodbstreams::Client {
        transport::client(self)
    }

    /// The in-process HTTP client, to build a custom SDK config around it.
    pub fn http_client(&self) -> aws_smithy_runtime_api::client::http::SharedHttpClient {
        transport::http_client(self)
    }

    /// Serves one protocol call: `target` is the `X-Amz-Target` operation (with or without
    /// the `DynamoDBStreams_20120810.` prefix), `body` the JSON request. Returns the HTTP
    /// status and the JSON response body (an error body for non-2xx statuses).
    pub fn handle(&self, target: &str, body: &[u8]) -> (u16, bytes::Bytes) {
        let now = Instant::now();
        // Parse before locking; a scripted fault still wins over a malformed body.
        let call = wire::operation(target).map(|op| (op, wire::parse(op, body)));
        let ctx = api::Ctx {
            sim: self.inner.id,
            arn: &self.inner.meta.arn,
            table: &self.inner.meta.table,
        };
        let result = {
            let mut m = self.lock();
            m.counts.total += 1;
            let result = call.and_then(|(op, request)| {
                match op {
                    Operation::DescribeStream => m.counts.describe_stream += 1,
                    Operation::GetShardIterator => m.counts.get_shard_iterator += 1,
                    Operation::GetRecords => m.counts.get_records += 1,
                    _ => m.counts.list_streams += 1,
                }
                match m.take_fault(op) {
                    Some(fault) => Err(ApiError::new(fault.into(), "Injected by the simulator")),
                    None => request.and_then(|req| m.serve(req, ctx, now)),
                }
            });
            if result.is_err() {
                m.counts.errors += 1;
            }
            result
        };
        match result {
            Ok(reply) => (200, reply.render(&self.inner.meta)),
            Err(e) => e.render(),
        }
    }
}
