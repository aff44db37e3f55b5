//! Several consumers sharing one simulated stream through one in-memory lease table, each on
//! its own task, driven by a script (join, stop, kill, pause), with every delivery logged on
//! the table's logical clock; and the checks of the protocol's guarantees over the log.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dynamodb_stream::lease::LeaseTable;
use dynamodb_stream::sim::{LeaseWrite, MemoryLeaseTable, Simulator};
use dynamodb_stream::{ChangeStream, Committer, SequenceNumber, StartPosition};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::sim::pk_v;

/// One event as one consumer got it.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub worker: String,
    /// The lease's holder: worker and incarnation.
    pub owner: String,
    pub shard: String,
    pub epoch: u64,
    pub seq: SequenceNumber,
    pub pk: String,
    pub v: u64,
    /// The table's logical clock when the consumer got it.
    pub tick: u64,
}

enum Command {
    Stop,
    Kill,
    Pause(Duration),
}

struct Worker {
    commands: mpsc::UnboundedSender<Command>,
    task: JoinHandle<()>,
    /// For status; dropped with the worker, so that a kill leaves no handle behind.
    lease: LeaseTable,
}

/// The consumers, the stream and the table.
pub struct Cluster {
    pub sim: Simulator,
    pub table: MemoryLeaseTable,
    pub log: Arc<Mutex<Vec<Delivery>>>,
    pub errors: Arc<Mutex<Vec<String>>>,
    pub lease: Duration,
    /// The consumers' longest wait between polls of an idle shard.
    pub max_poll: Duration,
    workers: BTreeMap<String, Worker>,
}

impl Cluster {
    pub fn new(sim: Simulator) -> Self {
        Self {
            sim,
            table: MemoryLeaseTable::new(),
            log: Arc::default(),
            errors: Arc::default(),
            lease: Duration::from_secs(10),
            max_poll: Duration::from_millis(200),
            workers: BTreeMap::new(),
        }
    }

    /// Starts consumer `name` (a new process: a new incarnation even under an old name).
    pub fn join(&mut self, name: &str) {
        let (commands, rx) = mpsc::unbounded_channel();
        let lease = self.table.lease_table(name).lease_duration(self.lease);
        let parts = Parts {
            sim: self.sim.clone(),
            table: self.table.clone(),
            log: self.log.clone(),
            errors: self.errors.clone(),
            max_poll: self.max_poll,
        };
        let task = tokio::spawn(consume(parts, lease.clone(), name.to_owned(), rx));
        let worker = Worker {
            commands,
            task,
            lease,
        };
        self.workers.insert(name.to_owned(), worker);
    }

    /// Stops `name` gracefully (its committer closes: it saves and hands its shards over) and
    /// waits for it.
    pub async fn stop(&mut self, name: &str) {
        if let Some(w) = self.workers.remove(name) {
            let _ = w.commands.send(Command::Stop);
            let _ = w.task.await;
        }
    }

    /// Kills `name`: it stops at once, saving and releasing nothing.
    pub async fn kill(&mut self, name: &str) {
        if let Some(w) = self.workers.remove(name) {
            let _ = w.commands.send(Command::Kill);
            let _ = w.task.await;
        }
    }

    /// Freezes `name` for `d`: it neither consumes nor reaches the table.
    pub fn pause(&self, name: &str, d: Duration) {
        if let Some(w) = self.workers.get(name) {
            let _ = w.commands.send(Command::Pause(d));
        }
    }

    /// The shards `name` holds now.
    pub fn held(&self, name: &str) -> Vec<String> {
        self.workers
            .get(name)
            .and_then(|w| w.lease.status())
            .map(|s| s.held)
            .unwrap_or_default()
    }

    /// The lease status of `name`.
    pub fn status(&self, name: &str) -> Option<dynamodb_stream::lease::LeaseStatus> {
        self.workers.get(name).and_then(|w| w.lease.status())
    }

    pub fn running(&self) -> Vec<String> {
        self.workers.keys().cloned().collect()
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.log.lock().unwrap().clone()
    }

    /// Waits (virtual time) until every `(pk, v)` in `expected` was delivered, or `limit`.
    pub async fn wait_for(&self, expected: &HashSet<(String, u64)>, limit: Duration) -> bool {
        let until = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < until {
            let got: HashSet<(String, u64)> =
                self.deliveries().into_iter().map(|d| (d.pk, d.v)).collect();
            if expected.is_subset(&got) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    }

    /// Stops every consumer gracefully.
    pub async fn stop_all(&mut self) {
        for name in self.running() {
            self.stop(&name).await;
        }
    }
}

/// What a consumer shares with the cluster.
struct Parts {
    sim: Simulator,
    table: MemoryLeaseTable,
    log: Arc<Mutex<Vec<Delivery>>>,
    errors: Arc<Mutex<Vec<String>>>,
    max_poll: Duration,
}

async fn consume(
    parts: Parts,
    lease: LeaseTable,
    name: String,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let Parts {
        sim,
        table,
        log,
        errors,
        max_poll,
    } = parts;
    let stream = ChangeStream::builder(sim.client(), sim.stream_arn())
        .start(StartPosition::TrimHorizon)
        .poll_interval(Duration::from_millis(50).min(max_poll))
        .max_poll_interval(max_poll)
        .lease(lease.clone())
        .build()
        .expect("a leased stream");
    let mut events = Committer::new(stream, lease)
        .every(10)
        .interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            next = events.next() => match next {
                Some(Ok(ev)) => {
                    let token = ev.lease().expect("a leased event names its lease").clone();
                    let (pk, v) = pk_v(&ev);
                    log.lock().unwrap().push(Delivery {
                        worker: name.clone(),
                        owner: token.owner().to_owned(),
                        shard: ev.shard_id().to_owned(),
                        epoch: token.epoch(),
                        seq: ev.sequence_number().clone(),
                        pk,
                        v,
                        tick: table.tick(),
                    });
                    events.ack(&ev);
                }
                Some(Err(e)) => {
                    errors.lock().unwrap().push(format!("{name}: {e:?}"));
                    if !e.is_retryable() && e.kind() != dynamodb_stream::ErrorKind::Store {
                        return;
                    }
                }
                None => return,
            },
            command = commands.recv() => match command {
                Some(Command::Stop) | None => {
                    if let Err(e) = events.close().await {
                        errors.lock().unwrap().push(format!("{name} close: {e:?}"));
                    }
                    return;
                }
                Some(Command::Kill) => return,
                Some(Command::Pause(d)) => {
                    table.partition(&name, true);
                    tokio::time::sleep(d).await;
                    table.partition(&name, false);
                }
            },
        }
    }
}

/// The guarantees over one run: no two holders of a shard deliver at once (the delivery
/// intervals of its epochs are disjoint and in epoch order), each holder delivers a shard in
/// order (per key too), epochs only grow in the table, and a child's first event comes after
/// its parent was saved as done.
pub fn assert_protocol(sim: &Simulator, deliveries: &[Delivery], history: &[LeaseWrite]) {
    let mut by_lease: BTreeMap<(String, u64), Vec<&Delivery>> = BTreeMap::new();
    for d in deliveries {
        by_lease
            .entry((d.shard.clone(), d.epoch))
            .or_default()
            .push(d);
    }
    let mut intervals: HashMap<String, Vec<(u64, u64, u64)>> = HashMap::new();
    for ((shard, epoch), ds) in &by_lease {
        let owners: HashSet<&str> = ds.iter().map(|d| d.owner.as_str()).collect();
        assert_eq!(owners.len(), 1, "{shard}@{epoch} delivered by {owners:?}");
        for pair in ds.windows(2) {
            assert!(
                pair[0].seq < pair[1].seq,
                "{shard}@{epoch}: {:?} then {:?}",
                pair[0].seq,
                pair[1].seq
            );
        }
        let mut keys: HashMap<&str, u64> = HashMap::new();
        for d in ds {
            if let Some(prev) = keys.insert(&d.pk, d.v) {
                assert!(
                    prev < d.v,
                    "{shard}@{epoch}: key {} v {} after {prev}",
                    d.pk,
                    d.v
                );
            }
        }
        let (first, last) = (ds[0].tick, ds[ds.len() - 1].tick);
        intervals
            .entry(shard.clone())
            .or_default()
            .push((*epoch, first, last));
    }
    for (shard, mut spans) in intervals {
        spans.sort();
        for pair in spans.windows(2) {
            let ((e1, _, last1), (e2, first2, _)) = (pair[0], pair[1]);
            assert!(
                last1 < first2,
                "{shard}: epoch {e1} delivered until {last1}, epoch {e2} from {first2}"
            );
        }
    }
    let mut epochs: HashMap<&str, u64> = HashMap::new();
    let mut done_at: HashMap<&str, u64> = HashMap::new();
    for w in history {
        let prev = epochs.insert(&w.shard_id, w.epoch).unwrap_or(0);
        assert!(
            w.epoch >= prev,
            "{}: epoch {} after {prev}",
            w.shard_id,
            w.epoch
        );
        if w.done {
            done_at.entry(&w.shard_id).or_insert(w.at);
        }
    }
    for shard in sim.shards() {
        let Some(parent) = &shard.parent_shard_id else {
            continue;
        };
        let first = deliveries
            .iter()
            .filter(|d| d.shard == shard.shard_id)
            .map(|d| d.tick)
            .min();
        let parent_read = deliveries.iter().any(|d| &d.shard == parent);
        if let (Some(first), true) = (first, parent_read) {
            let done = done_at.get(parent.as_str()).copied();
            assert!(
                done.is_some_and(|at| at < first),
                "child {} delivered at {first} before its parent {parent} was saved done ({done:?})",
                shard.shard_id
            );
        }
    }
}
