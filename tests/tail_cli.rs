//! The `tail` example as a process: its flags, output, checkpoint file and exit codes, over
//! moto and over the embedded demo.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::process::ExitStatus;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue as D;
use dynamodb_stream::{ChangeStream, Checkpoint, StartPosition};
use futures::StreamExt;
use serde_json::{Value, json};
use support::moto::Moto;
use support::tail::{by_shard, tail_command};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// Any run of `tail` in these tests ends well within this.
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// `tail` with `args`, reading `moto` if given, with a clean AWS environment.
fn tail(args: &[&str], moto: Option<&Moto>) -> Command {
    let mut command = tail_command(args);
    if let Some(moto) = moto {
        command
            .envs(moto.env())
            .args(["--endpoint-url", moto.endpoint()]);
    }
    command
}

struct Run {
    status: ExitStatus,
    lines: Vec<Value>,
    stderr: String,
}

/// Runs `command` to its end and parses its stdout, one JSON object per line.
async fn run(mut command: Command) -> Run {
    let out = tokio::time::timeout(RUN_LIMIT, command.output())
        .await
        .expect("tail did not exit in time")
        .expect("tail starts");
    Run {
        status: out.status,
        lines: parse_lines(&out.stdout),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every line must be one whole JSON object: none torn, nothing else on stdout.
fn parse_lines(stdout: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(stdout).expect("UTF-8 output");
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "a torn last line: {text:?}"
    );
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect()
}

async fn put_items(moto: &Moto, table: &str, range: std::ops::Range<u32>) {
    let client = moto.dynamodb();
    for i in range {
        client
            .put_item()
            .table_name(table)
            .item("pk", D::S(format!("k{i:03}")))
            .item("v", D::N(i.to_string()))
            .send()
            .await
            .expect("PutItem");
    }
}

fn pks(lines: &[Value]) -> Vec<&str> {
    lines
        .iter()
        .map(|l| l["keys"]["pk"].as_str().expect("a string pk"))
        .collect()
}

#[tokio::test]
async fn table_until_caught_up_prints_every_event_as_documented() {
    let moto = Moto::start();
    let arn = moto.create_table("orders", false).await;
    let client = moto.dynamodb();
    client
        .put_item()
        .table_name("orders")
        .item("pk", D::S("a".into()))
        .item("n", D::N("3".into()))
        .item("big", D::N("123456789012345678901234567890".into()))
        .item("b", D::B(vec![1u8, 2, 255].into()))
        .item("ok", D::Bool(true))
        .item("none", D::Null(true))
        .item(
            "m",
            D::M(HashMap::from([("x".into(), D::L(vec![D::S("y".into())]))])),
        )
        .item("ss", D::Ss(vec!["s".into()]))
        .item("ns", D::Ns(vec!["1.5".into()]))
        .item("bs", D::Bs(vec![vec![0u8].into()]))
        .send()
        .await
        .expect("PutItem");
    client
        .delete_item()
        .table_name("orders")
        .key("pk", D::S("a".into()))
        .send()
        .await
        .expect("DeleteItem");

    let args = [
        "--table",
        "orders",
        "--from",
        "trim-horizon",
        "--until-caught-up",
    ];
    // Without --line-checkpoints, no line carries a token.
    let plain = run(tail(&args, Some(&moto))).await;
    assert!(
        plain.status.success(),
        "{:?}: {}",
        plain.status,
        plain.stderr
    );
    assert_eq!(plain.lines.len(), 2);
    assert!(plain.lines.iter().all(|l| l.get("checkpoint").is_none()));
    let mut with_tokens = args.to_vec();
    with_tokens.push("--line-checkpoints");
    let out = run(tail(&with_tokens, Some(&moto))).await;
    assert!(out.status.success(), "{:?}: {}", out.status, out.stderr);
    assert_eq!(out.stderr, "", "nothing on stderr by default");
    assert_eq!(out.lines.len(), 2);
    for (a, b) in plain.lines.iter().zip(&out.lines) {
        let mut b = b.clone();
        b.as_object_mut().expect("an object").remove("checkpoint");
        assert_eq!(a, &b, "the flag adds the token and changes nothing else");
    }
    let (insert, remove) = (&out.lines[0], &out.lines[1]);
    let fields: Vec<&str> = insert
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = vec![
        "event_id",
        "kind",
        "shard_id",
        "sequence_number",
        "approximate_creation_time",
        "keys",
        "new_image",
        "old_image",
        "ttl_delete",
        "checkpoint",
    ];
    expected.sort_unstable();
    assert_eq!(fields, expected);
    assert_eq!(insert["kind"], "INSERT");
    assert_eq!(remove["kind"], "REMOVE");
    assert_eq!(insert["keys"], json!({"pk": "a"}));
    let image = json!({
        "pk": "a", "n": 3, "big": "123456789012345678901234567890", "b": "AQL/", "ok": true,
        "none": null, "m": {"x": ["y"]}, "ss": ["s"], "ns": [1.5], "bs": ["AA=="],
    });
    assert_eq!(insert["new_image"], image);
    assert_eq!(insert["old_image"], Value::Null);
    assert_eq!(remove["old_image"], image);
    assert_eq!(remove["new_image"], Value::Null);
    assert_eq!(insert["ttl_delete"], false);
    let time = insert["approximate_creation_time"]
        .as_str()
        .expect("a time");
    assert!(time.len() == 20 && time.ends_with('Z'), "{time}");
    for line in &out.lines {
        let checkpoint: Checkpoint = line["checkpoint"]
            .as_str()
            .expect("a string")
            .parse()
            .expect("a checkpoint token");
        assert_eq!(checkpoint.stream_arn(), arn);
        assert!(
            line["shard_id"]
                .as_str()
                .expect("a shard")
                .starts_with("shardId-")
        );
    }
}

#[tokio::test]
async fn limit_prints_exactly_n_and_exits_zero() {
    let moto = Moto::start();
    let arn = moto.create_table("limited", false).await;
    put_items(&moto, "limited", 0..5).await;
    let args = [
        "--stream-arn",
        &arn,
        "--from",
        "trim-horizon",
        "--limit",
        "2",
    ];
    let out = run(tail(&args, Some(&moto))).await;
    assert!(out.status.success(), "{:?}: {}", out.status, out.stderr);
    assert_eq!(pks(&out.lines), ["k000", "k001"]);
}

#[tokio::test]
async fn a_checkpoint_survives_kill_9_and_a_restart_loses_nothing() {
    let moto = Moto::start();
    let arn = moto.create_table("killed", false).await;
    let file = tempfile::tempdir().expect("a temporary directory");
    let checkpoint = file.path().join("tail.ckpt");
    let checkpoint = checkpoint.to_str().expect("a UTF-8 path");
    let writer = {
        let client = moto.dynamodb();
        tokio::spawn(async move {
            for i in 0..60u32 {
                client
                    .put_item()
                    .table_name("killed")
                    .item("pk", D::S(format!("k{i:03}")))
                    .send()
                    .await
                    .expect("PutItem");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let args = [
        "--table",
        "killed",
        "--from",
        "trim-horizon",
        "--checkpoint",
        checkpoint,
        "--line-checkpoints",
    ];
    // Kill tail -9 at a few moments while events flow, then let one run catch up.
    let mut runs: Vec<(Vec<Value>, Option<String>)> = Vec::new();
    for kill_after in [700, 450, 300] {
        let mut child = tail(&args, Some(&moto)).spawn().expect("tail starts");
        let mut stdout = child.stdout.take().expect("piped stdout");
        let reader = tokio::spawn(async move {
            let mut bytes = Vec::new();
            stdout.read_to_end(&mut bytes).await.map(|_| bytes)
        });
        tokio::time::sleep(Duration::from_millis(kill_after)).await;
        child.start_kill().expect("SIGKILL");
        child.wait().await.expect("reaped");
        let bytes = reader.await.expect("reader").expect("stdout");
        let saved = std::fs::read_to_string(checkpoint).ok();
        runs.push((parse_lines(&bytes), saved));
    }
    writer.await.expect("the writer finished");
    let mut last = args.to_vec();
    last.push("--until-caught-up");
    let out = run(tail(&last, Some(&moto))).await;
    assert!(out.status.success(), "{:?}: {}", out.status, out.stderr);
    runs.push((out.lines, None));

    // Everything the table's stream holds, read in-process.
    let all: Vec<String> = ChangeStream::builder(moto.streams(), &arn)
        .start(StartPosition::TrimHorizon)
        .until_caught_up(true)
        .build()
        .expect("a consumer")
        .map(|e| e.expect("no stream error").checkpoint().to_string())
        .collect()
        .await;
    assert_eq!(all.len(), 60);
    let index = |checkpoint: &str| all.iter().position(|c| c == checkpoint.trim_end());
    // Each run starts right after the event whose checkpoint the previous run saved last
    // (from the start if none), prints a contiguous stretch, and saves nothing it did not print.
    let mut next = 0;
    for (i, (lines, saved)) in runs.iter().enumerate() {
        let printed: Vec<&str> = lines
            .iter()
            .map(|l| l["checkpoint"].as_str().expect("a checkpoint"))
            .collect();
        let expected: Vec<&str> = all[next..]
            .iter()
            .take(printed.len())
            .map(String::as_str)
            .collect();
        assert_eq!(
            printed, expected,
            "run {i} starts where the last save left off"
        );
        next = match saved {
            Some(saved) => {
                let at = index(saved).expect("the saved checkpoint is an event's");
                assert!(
                    at < next + printed.len(),
                    "run {i} saved past what it printed"
                );
                at + 1
            }
            None if i + 1 < runs.len() => next,
            None => next + printed.len(),
        };
    }
    assert_eq!(next, all.len(), "the last run read to the end");
    let killed = &runs[..runs.len() - 1];
    assert!(
        killed
            .iter()
            .any(|(lines, saved)| !lines.is_empty() && saved.is_some()),
        "a killed run printed and saved something: {:?}",
        killed
            .iter()
            .map(|(l, s)| (l.len(), s.is_some()))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_wrong_stream_arn_fails_fast_with_one_clear_line() {
    let moto = Moto::start();
    moto.create_table("real", false).await;
    let wrong = "arn:aws:dynamodb:us-east-1:123456789012:table/nope/stream/2026-01-01T00:00:00.000";
    let started = std::time::Instant::now();
    let out = run(tail(&["--stream-arn", wrong], Some(&moto))).await;
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(out.lines.is_empty());
    assert_one_line(&out.stderr, wrong);

    let out = run(tail(&["--stream-arn", "not-an-arn"], Some(&moto))).await;
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert_one_line(&out.stderr, "not-an-arn");

    let out = run(tail(&["--table", "missing"], Some(&moto))).await;
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert_one_line(&out.stderr, "missing");
}

fn assert_one_line(stderr: &str, mentions: &str) {
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    assert!(stderr.starts_with("tail: "), "{stderr:?}");
    assert!(stderr.contains(mentions), "{stderr:?} names {mentions}");
    assert!(!stderr.contains("panicked"), "{stderr:?}");
}

#[tokio::test]
async fn bad_command_lines_get_the_usage_and_exit_two() {
    for args in [
        &["--no-such-flag"][..],
        &["--limit", "0"],
        &["--limit", "many"],
        &["--from", "yesterday"],
        &["--endpoint-url", "http://127.0.0.1:1"],
        &["--endpoint-url", "localhost", "--table", "t"],
        &[
            "--table",
            "t",
            "--stream-arn",
            "arn:aws:dynamodb:x:1:table/t/stream/l",
        ],
        &["--demo", "--table", "t"],
        &[
            "--table",
            "t",
            "--lease-table",
            "leases",
            "--checkpoint",
            "f",
        ],
        &["--table", "t", "--worker-id", "w"],
        &["--demo", "--lease-table", "leases"],
    ] {
        let out = run(tail(args, None)).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("Usage:"), "{args:?}: {}", out.stderr);
        assert!(out.lines.is_empty());
    }
}

#[tokio::test]
async fn the_demo_is_deterministic_lineage_ordered_and_resumable() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let checkpoint = dir.path().join("demo.ckpt");
    let checkpoint = checkpoint.to_str().expect("a UTF-8 path");
    let full = tokio::spawn(run(tail(&[], None)));
    let head = run(tail(
        &["--demo", "--limit", "12", "--checkpoint", checkpoint],
        None,
    ))
    .await;
    assert!(head.status.success(), "{:?}: {}", head.status, head.stderr);
    assert_eq!(head.lines.len(), 12);
    let rest = run(tail(&["--checkpoint", checkpoint], None)).await;
    assert!(rest.status.success(), "{:?}: {}", rest.status, rest.stderr);
    let full = full.await.expect("the full run");
    assert!(full.status.success(), "{:?}: {}", full.status, full.stderr);
    assert_eq!(full.stderr, "");

    let resumed: Vec<Value> = head.lines.iter().chain(&rest.lines).cloned().collect();
    assert_eq!(by_shard(&resumed), by_shard(&full.lines));
    assert_eq!(by_shard(&resumed).len(), 26);

    // Lineage order: every record of the first shard before any of its children's.
    let shards: Vec<&str> = full
        .lines
        .iter()
        .map(|l| l["shard_id"].as_str().expect("a shard"))
        .collect();
    let root = shards[0];
    let last_root = shards
        .iter()
        .rposition(|s| *s == root)
        .expect("root events");
    assert!(
        shards[..=last_root].iter().all(|s| *s == root),
        "{shards:?}"
    );
    let distinct: std::collections::HashSet<&str> = shards.iter().copied().collect();
    assert!(
        distinct.len() >= 3,
        "the demo splits and rolls over: {distinct:?}"
    );
    assert!(full.lines.iter().any(|l| l["ttl_delete"] == true));
    assert!(
        full.lines
            .iter()
            .any(|l| l["kind"] == "REMOVE" && l["ttl_delete"] == false)
    );

    // A checkpoint at the demo's end resumes to nothing, promptly.
    let again = run(tail(&["--demo", "--checkpoint", checkpoint], None)).await;
    assert!(again.status.success(), "{}", again.stderr);
    assert!(again.lines.is_empty(), "{:?}", again.lines);
}
