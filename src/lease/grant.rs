//! What passes between the coordinator (its own task) and the stream: grants and revocations
//! of shards, the fence that stops delivery when the lease may have run out, and reports back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::task::AtomicWaker;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::time::Instant;

use super::{LeaseTable, LeaseToken};
use crate::checkpoint::ShardPosition;
use crate::checkpoint::resume::ShardStart;
use crate::error::{Error, Result};

/// A shard this process may read, from `start`, under the lease `token`, until `stop`.
#[derive(Debug)]
pub(crate) struct Grant {
    pub(crate) token: Arc<LeaseToken>,
    pub(crate) shard: Arc<str>,
    pub(crate) start: ShardStart,
    /// The position saved in the table when the shard was taken.
    pub(crate) position: Option<ShardPosition>,
    stop: AtomicBool,
}

impl Grant {
    pub(crate) fn new(
        token: LeaseToken,
        start: ShardStart,
        position: Option<ShardPosition>,
    ) -> Arc<Self> {
        Arc::new(Self {
            shard: Arc::from(token.shard_id()),
            token: Arc::new(token),
            start,
            position,
            stop: AtomicBool::new(false),
        })
    }

    /// Whether the shard's events must no longer be delivered (lost or being handed over).
    pub(crate) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Until when this process may deliver events: the send time of its last successful
/// heartbeat plus most of the lease duration, on the monotonic clock. Peers take its shards
/// only once its heartbeat has stood still for longer than the lease, so delivery by an old
/// holder ends before delivery by the next begins, whatever the processes' wall clocks say.
#[derive(Debug)]
pub(crate) struct Fence {
    base: Instant,
    /// Nanoseconds after `base`; 0: closed.
    until: AtomicU64,
    waker: AtomicWaker,
    /// Set when the coordinator failed for good: the stream ends with this error.
    failed: std::sync::Mutex<Option<Error>>,
}

impl Fence {
    pub(crate) fn new() -> Self {
        Self {
            base: Instant::now(),
            until: AtomicU64::new(0),
            waker: AtomicWaker::new(),
            failed: std::sync::Mutex::new(None),
        }
    }

    /// Opens delivery until `until` (never moves the fence back).
    pub(crate) fn open_until(&self, until: Instant) {
        let nanos = u64::try_from(until.saturating_duration_since(self.base).as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        self.until.fetch_max(nanos, Ordering::AcqRel);
        self.waker.wake();
    }

    /// Closes delivery now.
    pub(crate) fn close(&self) {
        self.until.store(0, Ordering::Release);
        self.waker.wake();
    }

    /// The coordinator's failure, once.
    pub(crate) fn take_failure(&self) -> Option<Error> {
        self.failed.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    pub(crate) fn fail(&self, error: Error) {
        *self.failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
        self.close();
    }

    fn is_open(&self, now: Instant) -> bool {
        let until = self.until.load(Ordering::Acquire);
        until != 0 && now < self.base + Duration::from_nanos(until)
    }

    /// Ready while events may be delivered; an error once the coordinator failed.
    pub(crate) fn poll_open(&self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if let Some(error) = self.take_failure() {
            return Poll::Ready(Err(error));
        }
        if self.is_open(Instant::now()) {
            return Poll::Ready(Ok(()));
        }
        self.waker.register(cx.waker());
        // Opened (or failed) between the check and the registration: look again.
        if self.is_open(Instant::now()) {
            return Poll::Ready(Ok(()));
        }
        Poll::Pending
    }
}

/// What the coordinator tells the stream.
#[derive(Debug)]
pub(crate) enum ToStream {
    /// Read this shard.
    Grant(Arc<Grant>),
    /// Stop reading the shard (its grant is already stopped); with `report`, answer with the
    /// position delivered ([`FromStream::Delivered`]): it is being handed over.
    Revoke { shard: Arc<str>, report: bool },
    /// Drop the shard's position from the checkpoints and stop reading it (if it still is):
    /// it is saved as finished, handed over, or lost.
    Forget(Arc<str>),
}

/// What the stream tells the coordinator about a shard it read under lease `epoch`. A report
/// can arrive after the coordinator lost the shard and took it again under a later epoch:
/// it then speaks of the earlier lease and is ignored.
#[derive(Debug)]
pub(crate) enum FromStream {
    /// The shard's last page was delivered. When no event carried its end (the last page
    /// had no records), `finish_once_saved` is the position delivered before it: once that is
    /// saved, the shard is processed to its end, and the coordinator saves it as finished.
    ReadToEnd {
        shard: Arc<str>,
        epoch: u64,
        finish_once_saved: Option<Option<ShardPosition>>,
    },
    /// Reply to a revocation with `report`: the last position delivered (`None`: nothing).
    Delivered {
        shard: Arc<str>,
        epoch: u64,
        position: Option<ShardPosition>,
    },
}

/// The stream's end of its lease table.
#[derive(Debug)]
pub(crate) struct Lessee {
    pub(crate) table: LeaseTable,
    pub(crate) events: UnboundedReceiver<ToStream>,
    pub(crate) reports: UnboundedSender<FromStream>,
    pub(crate) fence: Arc<Fence>,
}

impl Lessee {
    pub(crate) fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<ToStream>> {
        self.events.poll_recv(cx)
    }

    pub(crate) fn report(&self, report: FromStream) {
        // The coordinator is gone only once the table is closed or failed: nothing to tell.
        let _ = self.reports.send(report);
    }
}
