//! Three `tail` processes share a live, splitting stream through one lease table: one is
//! killed with SIGKILL mid-stream, one starts late, one is stopped with SIGTERM. The stream is
//! the simulator served over loopback (`sim_server --live`), the lease table moto behind the
//! serializing proxy (`support/proxy.rs`), both through the proxy's one endpoint, as `tail`
//! reaches DynamoDB and DynamoDB Streams through one `--endpoint-url`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::example::example_binary;
use support::moto::Moto;
use support::proxy::Proxy;
use support::tail::tail_binary;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const RECORDS: usize = 1500;

/// A line of some tail's output, when the test read it.
struct Arrival {
    at: Instant,
    worker: &'static str,
    shard: String,
    pk: String,
    v: u64,
}

type Arrivals = Arc<Mutex<Vec<Arrival>>>;

/// `sim_server --live`: its endpoint and stream ARN.
async fn sim_server() -> (Child, String, String) {
    let mut child = Command::new(example_binary("sim_server"))
        .args(["--shards", "4", "--records", "0", "--keys", "40"])
        .args([
            "--live",
            &RECORDS.to_string(),
            "--live-every-ms",
            "8",
            "--live-splits",
            "4",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("sim_server starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = lines.next_line().await.unwrap().expect("its URL");
    let arn = lines.next_line().await.unwrap().expect("its stream ARN");
    // Its third line too: a reader that left early would break its pipe, and it would exit.
    lines.next_line().await.unwrap().expect("its record count");
    (child, url, arn)
}

fn tail(worker: &'static str, proxy: &Proxy, arn: &str, moto: &Moto, arrivals: &Arrivals) -> Child {
    let mut child = Command::new(tail_binary())
        .args([
            "--endpoint-url",
            &proxy.url,
            "--stream-arn",
            arn,
            "--from",
            "trim-horizon",
        ])
        .args(["--lease-table", "tail-leases", "--worker-id", worker])
        .envs(moto.env())
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("tail starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let arrivals = arrivals.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let json: Value = serde_json::from_str(&line).expect("every line is whole JSON");
            let image = &json["new_image"];
            arrivals.lock().unwrap().push(Arrival {
                at: Instant::now(),
                worker,
                shard: json["shard_id"].as_str().unwrap().to_owned(),
                pk: image["pk"].as_str().unwrap().to_owned(),
                v: image["v"].as_u64().unwrap(),
            });
        }
    });
    child
}

fn terminate(child: &Child) {
    let pid = child.id().expect("running");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

async fn wait_for_all(arrivals: &Arrivals, limit: Duration) {
    let until = Instant::now() + limit;
    loop {
        let seen: HashSet<u64> = arrivals.lock().unwrap().iter().map(|a| a.v).collect();
        if seen.len() == RECORDS {
            return;
        }
        assert!(
            Instant::now() < until,
            "{} of {RECORDS} records after {limit:?}",
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tails_share_a_live_stream_through_a_lease_table() {
    let moto = Moto::start();
    let (_server, url, arn) = sim_server().await;
    let proxy = Proxy::start(&url, moto.endpoint()).await;
    let arrivals: Arrivals = Arc::default();
    let start = Instant::now();
    let mut a = tail("a", &proxy, &arn, &moto, &arrivals);
    let mut b = tail("b", &proxy, &arn, &moto, &arrivals);
    tokio::time::sleep(Duration::from_secs(3)).await;
    a.start_kill().expect("SIGKILL");
    a.wait().await.unwrap();
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut c = tail("c", &proxy, &arn, &moto, &arrivals);
    tokio::time::sleep(Duration::from_secs(5)).await;
    terminate(&b);
    let stopped = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(10), b.wait())
        .await
        .expect("b exits within 10 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "b: {status:?}");
    let b_exit = stopped.elapsed();
    wait_for_all(&arrivals, Duration::from_secs(120)).await;
    terminate(&c);
    let status = tokio::time::timeout(Duration::from_secs(10), c.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "c: {status:?}");

    let arrivals = arrivals.lock().unwrap();
    // Per key, records arrive for the first time in the order they were written (the
    // lineage's order): a repeat of an earlier one may come later, never a skip backwards.
    let mut newest: HashMap<&str, u64> = HashMap::new();
    let mut first_seen: HashSet<u64> = HashSet::new();
    for a in arrivals.iter() {
        if !first_seen.insert(a.v) {
            continue;
        }
        if let Some(prev) = newest.insert(&a.pk, a.v) {
            assert!(prev < a.v, "key {}: v {} arrived after {prev}", a.pk, a.v);
        }
    }
    // a's shards, as a last printed them, are read again by others within 30 s.
    let a_shards: HashSet<&str> = arrivals
        .iter()
        .filter(|x| x.worker == "a")
        .map(|x| x.shard.as_str())
        .collect();
    let failover = a_shards
        .iter()
        .filter_map(|shard| {
            arrivals
                .iter()
                .find(|x| x.worker != "a" && x.shard == *shard && x.at > killed)
                .map(|x| x.at - killed)
        })
        .max();
    // What b printed, nobody printed again: a graceful stop hands over what was saved.
    let by_b: HashSet<u64> = arrivals
        .iter()
        .filter(|x| x.worker == "b")
        .map(|x| x.v)
        .collect();
    let repeated_after_b = arrivals
        .iter()
        .filter(|x| x.worker == "c" && by_b.contains(&x.v))
        .count();
    let duplicates = arrivals.len() - first_seen.len();
    println!(
        "{RECORDS} records, {} lines ({duplicates} repeated), a's shards {a_shards:?} back after {failover:?}, b exited {b_exit:?} after SIGTERM, run {:?}",
        arrivals.len(),
        start.elapsed()
    );
    if let Some(failover) = failover {
        assert!(
            failover <= Duration::from_secs(30),
            "failover took {failover:?}"
        );
    }
    assert_eq!(
        repeated_after_b,
        0,
        "records of b printed again after its graceful stop: {:?}",
        arrivals
            .iter()
            .filter(|x| x.worker == "c" && by_b.contains(&x.v))
            .take(8)
            .map(|x| {
                let first = arrivals.iter().find(|y| y.v == x.v).unwrap();
                format!(
                    "v{} {} by c {:?} after the stop, first by {} in {} {:?} after",
                    x.v,
                    x.shard,
                    x.at - stopped,
                    first.worker,
                    first.shard,
                    first.at.saturating_duration_since(stopped)
                )
            })
            .collect::<Vec<_>>()
    );
}
