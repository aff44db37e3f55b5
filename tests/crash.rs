//! `tail --checkpoint` killed with SIGKILL at random moments, again and again, against the
//! demo's live writes: the union of all outputs holds every record, the checkpoint file is
//! always whole and never ahead of what was printed, and a restart repeats only what came
//! after the last save.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use dynamodb_stream::{Checkpoint, SequenceNumber, ShardPosition};
use serde_json::Value;
use support::tail::tail_binary;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

const PASSES: usize = 3;
const MAX_KILLS_PER_PASS: usize = 20;

fn tail_demo(checkpoint: Option<&Path>) -> Child {
    let mut command = Command::new(tail_binary());
    command.arg("--demo");
    if let Some(file) = checkpoint {
        command.arg("--checkpoint").arg(file);
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("tail starts")
}

/// Reads `child`'s stdout until `kill_after` (then SIGKILL) or its exit; returns the lines
/// and whether it exited by itself.
async fn run(mut child: Child, kill_after: Option<Duration>) -> (Vec<Value>, bool) {
    let mut stdout = child.stdout.take().unwrap();
    let reader = tokio::spawn(async move {
        let mut out = Vec::new();
        stdout.read_to_end(&mut out).await.unwrap();
        out
    });
    let exited = match kill_after {
        Some(after) => match tokio::time::timeout(after, child.wait()).await {
            Ok(status) => {
                assert!(status.unwrap().success(), "tail failed");
                true
            }
            Err(_) => {
                child.kill().await.unwrap(); // SIGKILL
                false
            }
        },
        None => {
            let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
                .await
                .expect("the demo ends")
                .unwrap();
            assert!(status.success(), "tail failed");
            true
        }
    };
    let out = reader.await.unwrap();
    let text = String::from_utf8(out).expect("stdout is UTF-8");
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "a torn last line: {text:?}"
    );
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is whole JSON"))
        .collect();
    (lines, exited)
}

fn field<'a>(line: &'a Value, name: &str) -> &'a str {
    line[name].as_str().unwrap()
}

/// Whether `checkpoint` already covers the event printed as `line`.
fn covers(checkpoint: &Checkpoint, line: &Value) -> bool {
    let seq: SequenceNumber = field(line, "sequence_number").parse().unwrap();
    match checkpoint.position(field(line, "shard_id")) {
        Some(ShardPosition::Finished) => true,
        Some(ShardPosition::After(last)) => seq <= *last,
        _ => false,
    }
}

#[tokio::test]
async fn tail_killed_at_random_moments_loses_nothing_and_repeats_only_unsaved_events() {
    let (reference, _) = run(tail_demo(None), None).await;
    let all: HashSet<String> = reference
        .iter()
        .map(|l| field(l, "event_id").to_owned())
        .collect();
    assert!(all.len() >= 20, "the demo writes a few dozen records");
    let mut rng = fastrand::Rng::with_seed(0xC0FFEE);
    let mut kills = 0;
    // The demo lasts about three seconds: several passes, each killed until it completes.
    for _pass in 0..PASSES {
        kills += crash_until_done(&all, &mut rng).await;
    }
    assert!(kills >= 15, "too few kills landed mid-stream: {kills}");
}

/// One pass: a fresh checkpoint file, `tail` killed again and again until a run completes.
/// Returns how many runs were killed.
async fn crash_until_done(all: &HashSet<String>, rng: &mut fastrand::Rng) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("demo.checkpoint");
    let mut printed: Vec<Value> = Vec::new();
    let mut saved: Option<Checkpoint> = None;
    let mut kills = 0;
    loop {
        let kill_after =
            (kills < MAX_KILLS_PER_PASS).then(|| Duration::from_millis(rng.u64(300..1600)));
        let (lines, exited) = run(tail_demo(Some(&file)), kill_after).await;
        // A restart never repeats what the checkpoint it started from had covered.
        if let Some(cp) = &saved {
            for line in &lines {
                assert!(!covers(cp, line), "re-printed a saved event: {line}");
            }
        }
        printed.extend(lines);
        // Whatever the moment of the kill, the file is whole and not ahead of stdout.
        if file.exists() {
            let text = std::fs::read_to_string(&file).unwrap();
            let cp: Checkpoint = text.parse().expect("the checkpoint file is whole");
            for (shard, position) in cp.positions() {
                if let ShardPosition::After(seq) = position {
                    assert!(
                        printed.iter().any(|l| field(l, "shard_id") == shard
                            && field(l, "sequence_number") == seq.as_str()),
                        "the checkpoint ran ahead of stdout in {shard} at {seq}"
                    );
                }
            }
            saved = Some(cp);
        }
        if exited {
            break;
        }
        kills += 1;
    }
    let seen: HashSet<String> = printed
        .iter()
        .map(|l| field(l, "event_id").to_owned())
        .collect();
    let missing: Vec<_> = all.difference(&seen).collect();
    assert!(missing.is_empty(), "lost across {kills} kills: {missing:?}");
    kills
}
