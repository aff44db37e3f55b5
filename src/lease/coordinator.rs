//! The coordinator: one task per attached lease table that joins the group, heartbeats,
//! watches its peers, creates items for listed shards, and moves shards (takes, asks,
//! hand-overs, releases) as `plan` decides.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::grant::{FromStream, Grant, Lessee, ToStream};
use super::model::{Control, Item, Meta, Op, Outcome, Owner, ShardLease, StartMark, WorkerState};
use super::{Attached, LeaseTable, LeaseToken, Shared};
use crate::api::{Context, Failure, with_retries};
use crate::checkpoint::ShardPosition;
use crate::checkpoint::resume::ShardStart;
use crate::config::{StartPosition, epoch_secs};
use crate::error::{Error, ErrorKind, Result};
use crate::lineage::ShardInfo;

mod moves;
mod rounds;

/// A peer's heartbeat counter as last seen changing, and when.
#[derive(Debug)]
struct Seen {
    owner: Owner,
    beat: u64,
    at: Instant,
}

/// A shard being handed over to `asker`.
#[derive(Debug)]
struct Handoff {
    asker: Owner,
    started: Instant,
    /// The stream's answer: the last position it delivered.
    delivered: Option<Option<ShardPosition>>,
}

/// The protocol's timings, from the lease duration `D`.
#[derive(Clone, Copy, Debug)]
struct Timing {
    /// Between heartbeats: D/4, so that a peer sees the last one at most D/4 late.
    heartbeat: Duration,
    /// Delivery stops this long after a heartbeat is sent, unless a later one succeeds: 0.8 D.
    fence: Duration,
    /// A peer whose heartbeat stood still this long is evicted: D, 0.2 D after its fence
    /// closed (its heartbeat was sent before its counter was seen, so its fence closed at
    /// least 0.2 D before this on any clock that runs at about the same rate).
    evict_after: Duration,
    /// Shards are read again at least this often: 3 D.
    shard_reads: Duration,
    handoff_timeout: Duration,
}

/// How often the live worker with the smallest id lists every shard of the stream.
const LISTING_EVERY: Duration = Duration::from_secs(60);

pub(super) struct Coordinator {
    table: Arc<Shared>,
    ctx: Arc<Context>,
    pk: String,
    me: Owner,
    start: StartMark,
    timing: Timing,
    to_stream: mpsc::UnboundedSender<ToStream>,
    from_stream: Option<mpsc::UnboundedReceiver<FromStream>>,
    /// When the stream was dropped, if it was (and the table is not closing yet).
    stream_gone: Option<Instant>,
    control: Control,
    meta: Option<Meta>,
    /// This incarnation created the group's `#meta`: its first listing sets the start.
    creator: bool,
    listing: Vec<ShardInfo>,
    listed: Option<HashSet<Arc<str>>>,
    seen: HashMap<Arc<str>, Seen>,
    handoffs: HashMap<Arc<str>, Handoff>,
    preferred: HashSet<Arc<str>>,
    my_asks: HashMap<Arc<str>, Instant>,
    held: HashMap<Arc<str>, Arc<Grant>>,
    /// Shards that ended without an event, and the position delivered before the end.
    silent_ends: HashMap<Arc<str>, Option<ShardPosition>>,
    next_heartbeat: Instant,
    next_shards: Instant,
    next_listing: Instant,
    /// The shards must be read again (a move happened, or the group changed).
    dirty: bool,
}

/// Spawns the coordinator of `table` for the stream `ctx` reads.
pub(super) fn spawn(
    handle: LeaseTable,
    table: Arc<Shared>,
    ctx: Arc<Context>,
    start: StartPosition,
) -> Result<Lessee> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
        Error::new(
            ErrorKind::Config,
            "a stream shared through a lease table runs its heartbeat on tokio: poll it inside a tokio runtime",
        )
    })?;
    let me = Owner {
        worker: table.worker.clone(),
        inc: fastrand::u64(1..),
    };
    let pk = format!("{}|{}", table.settings().group, ctx.stream_arn);
    attach(&table, &pk, &me, &ctx)?;
    let (to_stream, events) = mpsc::unbounded_channel();
    let (reports, from_stream) = mpsc::unbounded_channel();
    let coordinator = Coordinator::new(table.clone(), ctx, pk, me, start, to_stream, from_stream);
    runtime.spawn(coordinator.run());
    Ok(Lessee {
        fence: table.fence.clone(),
        table: handle,
        events,
        reports,
    })
}

/// Marks the table as attached to the stream `ctx` reads (a handle serves one stream).
fn attach(table: &Shared, pk: &str, me: &Owner, ctx: &Context) -> Result<()> {
    let mut state = table.lock();
    if state.attached.is_some() {
        return Err(Error::new(
            ErrorKind::Config,
            "this lease table handle is already attached to a stream: make one per stream",
        ));
    }
    state.attached = Some(Attached {
        pk: pk.to_owned(),
        me: me.clone(),
        stream_arn: ctx.stream_arn.clone(),
    });
    Ok(())
}

impl Timing {
    fn of(lease: Duration, handoff_timeout: Duration) -> Self {
        Self {
            heartbeat: lease / 4,
            fence: lease.mul_f64(0.8),
            evict_after: lease,
            shard_reads: lease * 3,
            handoff_timeout,
        }
    }
}

impl Coordinator {
    fn new(
        table: Arc<Shared>,
        ctx: Arc<Context>,
        pk: String,
        me: Owner,
        start: StartPosition,
        to_stream: mpsc::UnboundedSender<ToStream>,
        from_stream: mpsc::UnboundedReceiver<FromStream>,
    ) -> Self {
        let settings = table.settings().clone();
        let start = match start {
            StartPosition::TrimHorizon => StartMark::TrimHorizon,
            _ => StartMark::LatestSince(epoch_secs(std::time::SystemTime::now()).saturating_sub(2)),
        };
        let now = Instant::now();
        Self {
            table,
            ctx,
            pk,
            me,
            start,
            timing: Timing::of(settings.lease, settings.handoff_timeout),
            to_stream,
            from_stream: Some(from_stream),
            stream_gone: None,
            control: Control::default(),
            meta: None,
            creator: false,
            listing: Vec::new(),
            listed: None,
            seen: HashMap::new(),
            handoffs: HashMap::new(),
            preferred: HashSet::new(),
            my_asks: HashMap::new(),
            held: HashMap::new(),
            silent_ends: HashMap::new(),
            next_heartbeat: now,
            next_shards: now,
            next_listing: now,
            dirty: true,
        }
    }
}

impl Coordinator {
    async fn run(mut self) {
        if let Err(e) = self.start_up().await {
            return self.fail(e);
        }
        let table = self.table.clone();
        loop {
            // A permit left by `notify_one` while the coordinator was busy wakes it at once.
            let wake = table.wake.notified();
            let (abandoned, closing) = {
                let state = self.table.lock();
                (state.abandoned, state.closing)
            };
            if abandoned {
                tracing::info!(worker = %self.me, "lease table dropped without close: its leases will run out");
                return;
            }
            if closing {
                return self.close().await;
            }
            if self.stream_gone_for_good() {
                return self.give_up();
            }
            if let Err(e) = self.step().await {
                return self.fail(e);
            }
            let deadline = self.next_deadline();
            let reports = async {
                match self.from_stream.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = wake => {}
                report = reports => match report {
                    Some(report) => self.on_report(report).await,
                    // The stream is gone: a `Committer` closing it saves and closes the
                    // table next; anything else gives the shards up (see `give_up`).
                    None => {
                        self.from_stream = None;
                        self.stream_gone = Some(Instant::now());
                    }
                },
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// The stream was dropped a lease duration ago and the table was not closed since: no
    /// one delivers this process's shards any more (a handle kept for `status` must not keep
    /// them from the others).
    fn stream_gone_for_good(&self) -> bool {
        self.stream_gone
            .is_some_and(|at| Instant::now() >= at + self.timing.evict_after)
    }

    /// Stops heartbeating without releasing anything, as after a crash: the shards move once
    /// the lease runs out, from their saved positions.
    fn give_up(&mut self) {
        tracing::warn!(worker = %self.me, "the stream was dropped without closing the lease table: its shards move once the lease runs out");
        for grant in self.held.values() {
            grant.stop();
        }
        self.table.fence.close();
        let mut state = self.table.lock();
        state.closed = Some(Err(ErrorKind::Store));
        state.held.clear();
        drop(state);
        self.table.released.notify_waiters();
    }

    /// The coordinator failed for good: the stream ends with the error.
    fn fail(&mut self, error: Error) {
        tracing::error!(worker = %self.me, error = %error, "lease table coordinator stopped");
        for grant in self.held.values() {
            grant.stop();
        }
        let kind = error.kind();
        self.table.fence.fail(error);
        let mut state = self.table.lock();
        state.closed = Some(Err(kind));
        drop(state);
        self.table.released.notify_waiters();
    }

    fn next_deadline(&self) -> Instant {
        let mut next = self.next_heartbeat.min(self.next_shards);
        if self.is_lister() {
            next = next.min(self.next_listing);
        }
        for seen in self.seen.values() {
            next = next.min(seen.at + self.timing.evict_after);
        }
        for handoff in self.handoffs.values() {
            next = next.min(handoff.started + self.timing.handoff_timeout);
        }
        if let Some(gone) = self.stream_gone {
            next = next.min(gone + self.timing.evict_after);
        }
        next
    }

    /// The live worker with the smallest id lists the stream every minute.
    fn is_lister(&self) -> bool {
        let smallest = self
            .control
            .workers
            .iter()
            .filter(|w| w.state == WorkerState::Live)
            .map(|w| &w.owner.worker)
            .min();
        smallest.is_none_or(|w| *w == self.me.worker)
    }

    async fn write(&self, op: Op) -> Result<Outcome> {
        self.table.write(&self.pk, op).await.map_err(store_error)
    }

    async fn read_control(&self) -> Result<Control> {
        let retry = self.table.settings().retry;
        with_retries(&retry, "lease table control read", None, || {
            self.table.backend.control(&self.pk)
        })
        .await
        .map_err(store_error)
    }

    fn send(&self, event: ToStream) {
        // A gone stream needs no news: its shards are released by close or run out.
        let _ = self.to_stream.send(event);
    }
}

/// A lease table call that failed for good: the table is unreachable or refuses us.
fn store_error(failure: Failure) -> Error {
    match failure.error.kind() {
        ErrorKind::Store | ErrorKind::Config | ErrorKind::Conflict => failure.error,
        _ => Error::store("the lease table did not answer", failure.error),
    }
}

/// Where a shard taken with this item starts.
fn start_of(lease: &ShardLease) -> ShardStart {
    match (&lease.pos, &lease.iterator) {
        (Some(ShardPosition::After(seq)), _) => ShardStart::After(seq.clone()),
        (Some(ShardPosition::LatestSince(t)), Some(iterator)) => ShardStart::Iterator {
            iterator: iterator.clone(),
            since: epoch_secs(*t),
        },
        (Some(ShardPosition::LatestSince(t)), None) => ShardStart::Since(epoch_secs(*t)),
        _ => ShardStart::TrimHorizon,
    }
}

fn token(lease: &ShardLease, me: &Owner) -> LeaseToken {
    LeaseToken {
        shard_id: lease.shard.to_string(),
        epoch: lease.epoch,
        owner: me.encode(),
    }
}

fn worker_of(item: Option<Item>) -> Option<super::model::WorkerItem> {
    match item {
        Some(Item::Worker(w)) => Some(w),
        _ => None,
    }
}
