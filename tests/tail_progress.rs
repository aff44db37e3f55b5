//! `tail --until-caught-up`'s progress: with stderr not a terminal (a pipe, as here) nothing
//! of it is printed, and stdout is the same as without the flag. The terminal case needs a
//! pseudo-terminal, which these tests do not set up: the bar is checked by hand there.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::Value;
use support::tail::{by_shard, tail_command};

/// Stdout's lines and stderr of a demo run with `args`.
async fn demo(args: &[&str]) -> (Vec<Value>, String) {
    let run = tail_command(&[&["--demo"], args].concat()).output();
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
    assert_eq!(by_shard(&caught_up), by_shard(&plain));
}
