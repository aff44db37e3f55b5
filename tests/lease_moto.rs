//! The lease table on a real DynamoDB implementation: moto, behind a proxy that sends it one
//! request at a time (moto's conditional writes are not atomic under concurrency; see
//! `support/proxy.rs`). The stream is the in-process simulator; time is real.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::time::Duration;

use dynamodb_stream::lease::LeaseTable;
use dynamodb_stream::sim::Simulator;
use dynamodb_stream::{ChangeStream, CheckpointStore, Committer, ErrorKind, StartPosition};
use futures::StreamExt;
use support::moto::{Moto, dynamodb_at};
use support::proxy::Proxy;
use support::sim::{item, pk_v};

const LEASE: Duration = Duration::from_secs(3);

fn stream_with(shards: usize, records: u64) -> (Simulator, HashSet<(String, u64)>) {
    let sim = Simulator::builder().initial_shards(shards).seed(11).build();
    let written = (0..records)
        .map(|v| {
            let pk = format!("k{}", v % 10);
            sim.put_item(item(&pk, v));
            (pk, v)
        })
        .collect();
    (sim, written)
}

async fn table(proxy: &Proxy, name: &str, worker: &str) -> LeaseTable {
    let lease = LeaseTable::new(dynamodb_at(&proxy.url), name, worker).lease_duration(LEASE);
    lease.create_table().await.expect("the lease table");
    lease
}

/// Consumes through `lease` until `stop` fires, sending every `(pk, v)` on `out`; closes
/// (saves and releases) unless `kill`.
async fn consume(
    sim: Simulator,
    lease: LeaseTable,
    out: tokio::sync::mpsc::UnboundedSender<(String, u64)>,
    mut stop: tokio::sync::oneshot::Receiver<bool>,
) {
    let stream = ChangeStream::builder(sim.client(), sim.stream_arn())
        .start(StartPosition::TrimHorizon)
        .poll_interval(Duration::from_millis(50))
        .max_poll_interval(Duration::from_millis(200))
        .lease(lease.clone())
        .build()
        .unwrap();
    let mut events = Committer::new(stream, lease)
        .every(5)
        .interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            next = events.next() => {
                let ev = next.expect("the stream goes on").expect("no error");
                let _ = out.send(pk_v(&ev));
                events.ack(&ev);
            }
            kill = &mut stop => {
                if !kill.unwrap_or(true) {
                    events.close().await.expect("close saves and releases");
                }
                return;
            }
        }
    }
}

async fn collect_until(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, u64)>,
    seen: &mut Vec<(String, u64)>,
    expected: &HashSet<(String, u64)>,
) {
    tokio::time::timeout(Duration::from_secs(60), async {
        while !expected.iter().all(|e| seen.contains(e)) {
            seen.push(rx.recv().await.expect("consumers run"));
        }
    })
    .await
    .expect("every record within a minute");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_a_stream_and_survive_a_kill_on_moto() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.endpoint(), moto.endpoint()).await;
    let (sim, mut written) = stream_with(4, 80);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (stop_a, a_stop) = tokio::sync::oneshot::channel();
    let (stop_b, b_stop) = tokio::sync::oneshot::channel();
    let a = tokio::spawn(consume(
        sim.clone(),
        table(&proxy, "leases", "a").await,
        tx.clone(),
        a_stop,
    ));
    let b = tokio::spawn(consume(
        sim.clone(),
        table(&proxy, "leases", "b").await,
        tx,
        b_stop,
    ));
    let mut seen = Vec::new();
    collect_until(&mut rx, &mut seen, &written).await;
    assert_eq!(seen.len(), written.len(), "no duplicates without failures");
    stop_a.send(true).unwrap(); // SIGKILL-like: nothing saved or released
    a.await.unwrap();
    let killed = std::time::Instant::now();
    for v in 80..160 {
        let pk = format!("k{}", v % 10);
        sim.put_item(item(&pk, v));
        written.insert((pk, v));
    }
    collect_until(&mut rx, &mut seen, &written).await;
    let failover = killed.elapsed();
    assert!(
        failover < Duration::from_secs(20),
        "failover took {failover:?}"
    );
    println!("failover on moto with a {LEASE:?} lease: {failover:?}");
    stop_b.send(false).unwrap();
    b.await.unwrap();
    assert!(
        proxy.log.lock().unwrap().iter().all(|(_, op)| op != "Scan"),
        "never a scan"
    );
}

#[tokio::test]
async fn a_missing_table_another_schema_and_no_table_server_are_clear_errors() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.endpoint(), moto.endpoint()).await;
    let (sim, _) = stream_with(1, 1);
    let first_error = |lease: LeaseTable| {
        let sim = sim.clone();
        async move {
            let mut stream = ChangeStream::builder(sim.client(), sim.stream_arn())
                .start(StartPosition::TrimHorizon)
                .lease(lease)
                .build()
                .unwrap();
            tokio::time::timeout(Duration::from_secs(60), stream.next())
                .await
                .expect("an answer")
                .expect("an item")
                .expect_err("an error")
        }
    };
    let missing = LeaseTable::new(dynamodb_at(&proxy.url), "never-created", "w");
    let err = first_error(missing).await;
    assert_eq!(err.kind(), ErrorKind::Store, "{err}");
    assert!(err.to_string().contains("never-created"), "{err}");
    // A table of another schema (the checkpoint table's).
    let other = dynamodb_stream::store::DynamoDbStore::new(moto.dynamodb(), "checkpoints");
    other.create_table().await.unwrap();
    let wrong = LeaseTable::new(dynamodb_at(&proxy.url), "checkpoints", "w");
    assert_eq!(
        wrong.create_table().await.unwrap_err().kind(),
        ErrorKind::Config
    );
    assert_eq!(first_error(wrong).await.kind(), ErrorKind::Config);
    // Nothing listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let unreachable = LeaseTable::new(dynamodb_at(&url), "leases", "w").retries(
        1,
        Duration::from_millis(10),
        Duration::from_millis(20),
    );
    let err = unreachable.create_table().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_migrate_into_a_lease_table_and_back_without_loss() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.endpoint(), moto.endpoint()).await;
    let (sim, written) = stream_with(3, 60);
    // Read half alone, then move to a lease table.
    let mut alone = ChangeStream::builder(sim.client(), sim.stream_arn())
        .start(StartPosition::TrimHorizon)
        .build()
        .unwrap();
    let mut seen = Vec::new();
    let mut last = None;
    while seen.len() < 30 {
        let ev = alone.next().await.unwrap().unwrap();
        seen.push(pk_v(&ev));
        last = Some(ev.into_checkpoint());
    }
    drop(alone);
    let lease = table(&proxy, "migrated", "w").await;
    lease
        .seed(&sim.client(), last.as_ref().unwrap())
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let worker = tokio::spawn(consume(sim.clone(), lease.clone(), tx, stopped));
    collect_until(&mut rx, &mut seen, &written).await;
    assert_eq!(
        seen.len(),
        written.len(),
        "seeding repeats and skips nothing"
    );
    stop.send(false).unwrap();
    worker.await.unwrap();
    // And back: the table's snapshot resumes a consumer alone with nothing left to read.
    let snapshot = lease
        .load(&sim.stream_arn())
        .await
        .unwrap()
        .expect("a snapshot");
    let rest: Vec<_> = ChangeStream::builder(sim.client(), sim.stream_arn())
        .resume_from(snapshot)
        .until_caught_up(true)
        .build()
        .unwrap()
        .collect()
        .await;
    assert!(rest.is_empty(), "everything was saved: {rest:?}");
}
