//! `tail --until-caught-up`'s progress: with stderr not a terminal (a pipe, as here) nothing
//! of it is printed, and stdout is the same as without the flag. The terminal case needs a
//! pseudo-terminal, which these tests do not set up: the bar is checked by hand there.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use support::tail::tail_binary;
use tokio::process::Command;

/// Stdout's lines and stderr of a demo run with `args`.
async fn demo(args: &[&str]) -> (Vec<Value>, String) {
    let run = Command::new(tail_binary())
        .arg("--demo")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("RUST_LOG")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("tail exits in time")
        .expect("tail starts");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    let stdout = std::str::from_utf8(&out.stdout).expect("UTF-8");
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    (lines, stderr)
}

/// The demo's records without what depends on timing (creation times), in stdout's order
/// per shard.
fn records(lines: &[Value]) -> Vec<Value> {
    let mut records: Vec<Value> = lines
        .iter()
        .map(|l| {
            let mut l = l.clone();
            l["approximate_creation_time"] = Value::Null;
            l
        })
        .collect();
    // Siblings interleave as their pages arrive; each shard's own order is kept.
    records.sort_by_key(|l| l["shard_id"].to_string());
    records
}

#[tokio::test]
async fn until_caught_up_to_a_pipe_prints_no_progress_and_the_same_events() {
    let (plain, quiet) = tokio::join!(demo(&[]), demo(&["--until-caught-up"]));
    let ((plain, plain_err), (caught_up, stderr)) = (plain, quiet);
    assert_eq!(
        stderr, "",
        "no progress, no summary when stderr is not a terminal"
    );
    assert_eq!(plain_err, "");
    assert_eq!(caught_up.len(), 26);
    assert_eq!(records(&caught_up), records(&plain));
}
