//! Several processes sharing one stream through a lease table: [`LeaseTable`].
//!
//! Every process that reads the stream through the same table (and group) holds some of its
//! shards; a [`ChangeStream`](crate::ChangeStream) built with
//! [`lease`](crate::ChangeStreamBuilder::lease) yields the events of the shards its process
//! holds, and saving its checkpoints (a [`Committer`](crate::Committer) over the table, which
//! is a [`CheckpointStore`](crate::CheckpointStore)) writes each shard's position into the table, fenced by the lease
//! that read it. See the README's "Several processes" for the protocol and its guarantees.
//!
//! - `model`: the items and the conditional writes; `plan`: who takes, asks and grants what
//!   (pure); `coordinator`: the task that heartbeats, watches peers and moves shards; `grant`:
//!   what passes between it and the stream; `backend`, `dynamo`, `memory`: where items live.

mod backend;
mod coordinator;
mod dynamo;
mod grant;
#[cfg(feature = "test-util")]
pub(crate) mod memory;
mod model;
mod plan;
mod store;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

use crate::api::Context;
use crate::checkpoint::ShardPosition;
use crate::config::StartPosition;
use crate::error::{Error, ErrorKind, Result};
use crate::retry::RetryPolicy;

pub use crate::status::{LeaseStatus, LeaseToken};

use backend::LeaseBackend;
use grant::Fence;
pub(crate) use grant::{FromStream, Grant, Lessee, ToStream};
use model::Owner;

/// How a lease table behaves; see the setters of [`LeaseTable`].
#[derive(Clone, Debug)]
struct Settings {
    group: String,
    lease: Duration,
    handoff_timeout: Duration,
    retry: RetryPolicy,
}

/// A process's handle on a lease table shared by the processes that read one stream
/// together: feature `dynamodb-store`.
///
/// ```no_run
/// use dynamodb_stream::lease::LeaseTable;
/// use dynamodb_stream::{ChangeStream, Committer, StartPosition};
/// use futures::StreamExt;
///
/// # async fn run(
/// #     dynamodb: aws_sdk_dynamodb::Client,
/// #     streams: aws_sdk_dynamodbstreams::Client,
/// #     arn: &str,
/// # ) -> dynamodb_stream::Result<()> {
/// let lease = LeaseTable::new(dynamodb, "stream-leases", "worker-1").group("billing");
/// lease.create_table().await?; // once, at setup: nothing happens if it exists
/// let stream = ChangeStream::builder(streams, arn)
///     .start(StartPosition::TrimHorizon) // used once, when the group first sees the stream
///     .lease(lease.clone())
///     .build()?;
/// let mut events = Committer::new(stream, lease.clone());
/// while let Some(event) = events.next().await {
///     let event = event?;
///     // ... process it; a sink can fence its writes with event.lease() ...
///     events.ack(&event);
/// }
/// events.close().await?; // saves, then hands every shard over to the other processes
/// # Ok(()) }
/// ```
///
/// A stream dropped without [`close`](Self::close) gives its shards up a lease duration later
/// even if handles of the table live on: its heartbeat stops, and peers take the shards over
/// from their saved positions, as after a crash (a later `close` then returns
/// [`ErrorKind::Store`]: nothing was released).
#[derive(Clone)]
pub struct LeaseTable {
    handle: Arc<Handle>,
}

/// Dropping the last handle without [`LeaseTable::close`] stops the heartbeat: peers take the
/// shards over once the lease runs out, as after a crash.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.lock().abandoned = true;
        self.shared.wake.notify_one();
    }
}

/// What the handles, the coordinator and the stream share.
pub(crate) struct Shared {
    backend: Arc<dyn LeaseBackend>,
    worker: Arc<str>,
    settings: Mutex<Settings>,
    state: Mutex<State>,
    fence: Arc<Fence>,
    /// Wakes the coordinator: a save finished a shard, a close was asked, the handles left.
    wake: Notify,
    /// Wakes [`LeaseTable::close`] once the coordinator released everything.
    released: Notify,
}

#[derive(Default)]
struct State {
    /// Set once a stream is attached: the partition, this incarnation, the stream's ARN.
    attached: Option<Attached>,
    held: HashMap<Arc<str>, Arc<Grant>>,
    /// The last position saved of each held shard.
    saved: HashMap<Arc<str>, ShardPosition>,
    /// Shards whose finish was saved, for the coordinator to act on.
    finished: Vec<Arc<str>>,
    awaiting_save: HashSet<Arc<str>>,
    status: LeaseStatus,
    closing: bool,
    closed: Option<Result<(), ErrorKind>>,
    abandoned: bool,
}

#[derive(Clone, Debug)]
struct Attached {
    pk: String,
    me: Owner,
    stream_arn: Arc<str>,
}

impl LeaseTable {
    /// The handle of worker `worker_id` on the DynamoDB table `table`, through `client`.
    ///
    /// Give every process its own worker id (a pod or instance name, or host and pid): two
    /// live processes with one id are refused ([`ErrorKind::Conflict`] from the stream). A
    /// process restarted under its old id takes over once the old run's lease ran out.
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        worker_id: impl Into<String>,
    ) -> Self {
        let backend = dynamo::DynamoLeases::new(client, table.into());
        Self::with_backend(Arc::new(backend), Arc::from(worker_id.into()))
    }

    pub(crate) fn with_backend(backend: Arc<dyn LeaseBackend>, worker: Arc<str>) -> Self {
        let shared = Shared {
            backend,
            worker,
            settings: Mutex::new(Settings {
                group: "default".into(),
                lease: Duration::from_secs(10),
                handoff_timeout: Duration::from_secs(30),
                retry: RetryPolicy::default(),
            }),
            state: Mutex::new(State::default()),
            fence: Arc::new(Fence::new()),
            wake: Notify::new(),
            released: Notify::new(),
        };
        Self {
            handle: Arc::new(Handle {
                shared: Arc::new(shared),
            }),
        }
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// The consumer group: processes of one group share the stream's shards, different
    /// groups (applications) read it independently from one table. Set it before the table
    /// is attached to a stream. Default is `"default"`.
    #[must_use]
    pub fn group(self, group: impl Into<String>) -> Self {
        self.shared().settings().group = group.into();
        self
    }

    /// How long a silent process keeps its shards: peers take them once its heartbeat
    /// (every quarter of it) has stood still that long, and it stops delivering a fifth of it
    /// before. Failover after a crash takes about 1.3 times it. At least 3 s. Default is 10 s.
    #[must_use]
    pub fn lease_duration(self, lease: Duration) -> Self {
        self.shared().settings().lease = lease.max(Duration::from_secs(3));
        self
    }

    /// How long a hand-over waits for the shard's delivered events to be saved before it
    /// hands the shard over anyway (what was not saved is then delivered again by the next
    /// holder). Default is 30 s.
    #[must_use]
    pub fn handoff_timeout(self, timeout: Duration) -> Self {
        self.shared().settings().handoff_timeout = timeout;
        self
    }

    /// Retries of a lease table call that was throttled, failed on the server or got no
    /// answer, with exponential backoff and jitter from `base` up to `max` per wait. Past them
    /// the stream ends with [`ErrorKind::Store`] (having stopped delivering once its lease
    /// could have run out). Default is 10 retries from 200 ms up to 10 s (about a minute).
    #[must_use]
    pub fn retries(self, retries: u32, base: Duration, max: Duration) -> Self {
        self.shared().settings().retry = RetryPolicy {
            max_retries: retries,
            base,
            max: max.max(base),
        };
        self
    }

    /// This process's worker id.
    pub fn worker_id(&self) -> &str {
        &self.shared().worker
    }

    /// Creates the table (string keys `pk` and `sk`, on-demand capacity, time to live on
    /// `expires_at`) if it does not exist, and waits until it is active.
    ///
    /// # Errors
    /// [`ErrorKind::Store`] when it cannot be created; [`ErrorKind::Config`] when a table of
    /// that name exists with another key schema.
    pub async fn create_table(&self) -> Result<()> {
        self.shared()
            .backend
            .prepare(true)
            .await
            .map_err(|f| f.error)
    }

    /// What this process holds, once its stream has started.
    pub fn status(&self) -> Option<LeaseStatus> {
        let state = self.shared().lock();
        state.attached.as_ref()?;
        let mut status = state.status.clone();
        status.worker_id = self.worker_id().to_owned();
        status.held = sorted(state.held.keys());
        status.awaiting_save = sorted(state.awaiting_save.iter());
        Some(status)
    }

    /// Hands every shard over and leaves the group: call it after the last save (a
    /// [`Committer`](crate::Committer)'s `close` does both). Peers take the shards at once,
    /// from the saved positions. Waits until done; nothing happens if the table was never
    /// attached to a stream.
    ///
    /// # Errors
    /// [`ErrorKind::Store`] when the table cannot be written: the shards then move once the
    /// lease runs out.
    pub async fn close(&self) -> Result<()> {
        let shared = self.shared();
        {
            let mut state = shared.lock();
            if state.attached.is_none() {
                return Ok(());
            }
            state.closing = true;
        }
        shared.wake.notify_one();
        loop {
            let mut released = std::pin::pin!(shared.released.notified());
            // Registered before the check: a release that lands in between still wakes it.
            released.as_mut().enable();
            if let Some(result) = shared.lock().closed {
                return result.map_err(|kind| {
                    Error::new(
                        kind,
                        "the lease table could not release this process's shards",
                    )
                });
            }
            released.await;
        }
    }

    /// Starts sharing the stream that `ctx` reads: spawns the coordinator on the current
    /// tokio runtime and returns the stream's end.
    pub(crate) fn attach(&self, ctx: Arc<Context>, start: StartPosition) -> Result<Lessee> {
        coordinator::spawn(self.clone(), self.shared().clone(), ctx, start)
    }
}

fn sorted<'a>(ids: impl Iterator<Item = &'a Arc<str>>) -> Vec<String> {
    let mut ids: Vec<String> = ids.map(|id| id.to_string()).collect();
    ids.sort_unstable();
    ids
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Updates are single assignments and inserts: a panic cannot leave it half changed.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn settings(&self) -> MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for LeaseTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaseTable")
            .field("worker_id", &self.worker_id())
            .field("backend", &self.shared().backend)
            .finish_non_exhaustive()
    }
}
