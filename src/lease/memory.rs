//! [`MemoryLeaseTable`]: lease items in process memory, every write atomic, with the faults a
//! real table has (throttling, lost replies, outages, a partitioned worker) on demand.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::FutureExt as _;
use tokio::sync::Notify;

use super::LeaseTable;
mod apply;

use super::backend::{Call, LeaseBackend};
use super::model::{Ask, Control, Meta, Op, Outcome, ShardLease, WorkerItem};
use crate::api::Failure;
use crate::error::{Error, ErrorKind};
use crate::retry::Fault;

/// A lease table in memory, shared by every [`LeaseTable`] made from it (clones share it too):
/// for testing consumers that share a stream, deterministically, under tokio's paused clock.
///
/// Writes are atomic, like DynamoDB's conditional writes (and unlike moto's). Faults can be
/// injected per worker: see [`inject`](Self::inject) and [`partition`](Self::partition).
#[derive(Clone, Default)]
pub struct MemoryLeaseTable {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    healed: Notify,
}

#[derive(Default)]
struct State {
    partitions: HashMap<String, Partition>,
    faults: HashMap<String, VecDeque<LeaseFault>>,
    /// Faults for one kind of write only, by worker and operation name.
    op_faults: HashMap<(String, String), VecDeque<LeaseFault>>,
    cut: HashSet<String>,
    calls: LeaseCalls,
    history: Vec<LeaseWrite>,
    clock: u64,
}

#[derive(Default)]
struct Partition {
    meta: Option<Meta>,
    workers: BTreeMap<Arc<str>, WorkerItem>,
    asks: BTreeMap<(Arc<str>, Arc<str>), Ask>,
    shards: BTreeMap<Arc<str>, ShardLease>,
}

/// A fault for a worker's next call to a [`MemoryLeaseTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaseFault {
    /// Refused as throttled; nothing is written.
    Throttled,
    /// A write is applied but its reply is lost (the caller sees a transport error); a read
    /// fails the same way.
    LostReply,
    /// The table does not answer (a server error); nothing is written.
    Unavailable,
}

/// Calls made to a [`MemoryLeaseTable`], counted by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseCalls {
    /// Reads of the control items (one small query per heartbeat round).
    pub control_reads: u64,
    /// Reads of every shard item of a group (a query).
    pub shard_reads: u64,
    /// Writes, by operation (`Heartbeat`, `Take`, `Checkpoint`, ...).
    pub writes: BTreeMap<&'static str, u64>,
}

impl LeaseCalls {
    /// Every call.
    pub fn total(&self) -> u64 {
        self.control_reads + self.shard_reads + self.writes.values().sum::<u64>()
    }
}

/// One applied write to a shard item, in the order the table applied them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseWrite {
    /// The table's logical time of the write (see [`MemoryLeaseTable::tick`]).
    pub at: u64,
    /// `Take`, `Checkpoint`, `Finish` or `Transfer`.
    pub op: &'static str,
    /// The shard.
    pub shard_id: String,
    /// Its epoch after the write.
    pub epoch: u64,
    /// Its owner after the write (`<worker>#<incarnation>`).
    pub owner: Option<String>,
    /// Whether it is done after the write.
    pub done: bool,
}

impl MemoryLeaseTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The lease table handle of worker `worker_id` over this table.
    pub fn lease_table(&self, worker_id: impl Into<String>) -> LeaseTable {
        let worker: Arc<str> = Arc::from(worker_id.into());
        let backend = WorkerBackend {
            table: self.clone(),
            worker: worker.clone(),
        };
        LeaseTable::with_backend(Arc::new(backend), worker)
    }

    /// Makes the next `times` calls of `worker_id` fail with `fault`.
    pub fn inject(&self, worker_id: &str, fault: LeaseFault, times: u32) {
        let mut state = self.lock();
        let queue = state.faults.entry(worker_id.to_owned()).or_default();
        queue.extend(std::iter::repeat_n(fault, times as usize));
    }

    /// Makes the next `times` writes named `op` (`Evict`, `Take`, `Checkpoint`, ...: the
    /// names [`LeaseCalls::writes`] counts) of `worker_id` fail with `fault`; its other calls
    /// go through.
    pub fn inject_on(&self, worker_id: &str, op: &str, fault: LeaseFault, times: u32) {
        let mut state = self.lock();
        let key = (worker_id.to_owned(), op.to_owned());
        let queue = state.op_faults.entry(key).or_default();
        queue.extend(std::iter::repeat_n(fault, times as usize));
    }

    /// Cuts `worker_id` off (`true`: its calls wait, as behind a network partition or in a
    /// paused process) or lets it through again (`false`).
    pub fn partition(&self, worker_id: &str, cut: bool) {
        let mut state = self.lock();
        if cut {
            state.cut.insert(worker_id.to_owned());
        } else {
            state.cut.remove(worker_id);
            self.inner.healed.notify_waiters();
        }
    }

    /// The calls made so far.
    pub fn calls(&self) -> LeaseCalls {
        self.lock().calls.clone()
    }

    /// Every applied write to a shard item, oldest first.
    pub fn history(&self) -> Vec<LeaseWrite> {
        self.lock().history.clone()
    }

    /// Advances and returns the table's logical clock, which also stamps [`LeaseWrite::at`]:
    /// a test that stamps its own observations with it can order them against the writes.
    pub fn tick(&self) -> u64 {
        let mut state = self.lock();
        state.clock += 1;
        state.clock
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change is made under one lock, in one step: a panic cannot leave it half done.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn op_fault(&self, worker: &str, op: &str) -> Option<LeaseFault> {
        let mut state = self.lock();
        let key = (worker.to_owned(), op.to_owned());
        state.op_faults.get_mut(&key).and_then(VecDeque::pop_front)
    }

    /// Waits while `worker` is cut off, then takes its next fault, if any.
    async fn admit(&self, worker: &str) -> Option<LeaseFault> {
        loop {
            let healed = self.inner.healed.notified();
            {
                let mut state = self.lock();
                if !state.cut.contains(worker) {
                    return state.faults.get_mut(worker).and_then(VecDeque::pop_front);
                }
            }
            healed.await;
        }
    }
}

impl fmt::Debug for MemoryLeaseTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryLeaseTable")
            .field("groups", &self.lock().partitions.len())
            .finish_non_exhaustive()
    }
}

/// One worker's view of a [`MemoryLeaseTable`]: its calls are the ones faults apply to.
#[derive(Debug)]
struct WorkerBackend {
    table: MemoryLeaseTable,
    worker: Arc<str>,
}

fn failure(fault: LeaseFault) -> Failure {
    let (fault, kind, what) = match fault {
        LeaseFault::Throttled => (Fault::Throttled, ErrorKind::Throttled, "throttled"),
        LeaseFault::LostReply => (Fault::Transport, ErrorKind::Transport, "reply lost"),
        LeaseFault::Unavailable => (Fault::Server, ErrorKind::Service, "unavailable"),
    };
    Failure {
        fault,
        error: Error::new(kind, format!("memory lease table: {what}")),
    }
}

impl LeaseBackend for WorkerBackend {
    fn prepare(&self, _create: bool) -> Call<'_, ()> {
        async { Ok(()) }.boxed()
    }

    fn control<'a>(&'a self, pk: &'a str) -> Call<'a, Control> {
        async move {
            if let Some(fault) = self.table.admit(&self.worker).await {
                return Err(failure(fault));
            }
            let mut state = self.table.lock();
            state.calls.control_reads += 1;
            let part = state.partitions.get(pk);
            Ok(part.map_or_else(Control::default, |p| Control {
                meta: p.meta.clone(),
                workers: p.workers.values().cloned().collect(),
                asks: p.asks.values().cloned().collect(),
            }))
        }
        .boxed()
    }

    fn shards<'a>(&'a self, pk: &'a str) -> Call<'a, Vec<ShardLease>> {
        async move {
            if let Some(fault) = self.table.admit(&self.worker).await {
                return Err(failure(fault));
            }
            let mut state = self.table.lock();
            state.calls.shard_reads += 1;
            let part = state.partitions.get(pk);
            Ok(part.map_or_else(Vec::new, |p| p.shards.values().cloned().collect()))
        }
        .boxed()
    }

    fn write<'a>(&'a self, pk: &'a str, op: Op) -> Call<'a, Outcome> {
        async move {
            let fault = match self.table.admit(&self.worker).await {
                Some(fault) => Some(fault),
                None => self.table.op_fault(&self.worker, op.name()),
            };
            if matches!(fault, Some(LeaseFault::Throttled | LeaseFault::Unavailable)) {
                return Err(failure(fault.unwrap_or(LeaseFault::Unavailable)));
            }
            let mut state = self.table.lock();
            *state.calls.writes.entry(op.name()).or_default() += 1;
            let outcome = state.apply(pk, &op);
            if let Some(lost) = fault {
                return Err(failure(lost));
            }
            Ok(outcome)
        }
        .boxed()
    }
}
