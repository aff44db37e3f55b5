//! `tail --from <RFC 3339 time>`: the records created at or after it (to the second), over
//! moto; a malformed time is a bad command line (usage, exit 2).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue as D;
use aws_sdk_dynamodbstreams::primitives::{DateTime, DateTimeFormat};
use serde_json::Value;
use support::moto::Moto;
use support::tail::tail_command;
use tokio::process::Command;

const RUN_LIMIT: Duration = Duration::from_secs(30);

fn tail(args: &[&str]) -> Command {
    tail_command(args)
}

async fn run(mut command: Command) -> (std::process::ExitStatus, Vec<Value>, String) {
    let out = tokio::time::timeout(RUN_LIMIT, command.output())
        .await
        .expect("tail did not exit in time")
        .expect("tail starts");
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
    let lines = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status, lines, stderr)
}

async fn put_items(moto: &Moto, range: std::ops::Range<u32>) {
    let client = moto.dynamodb();
    for i in range {
        client
            .put_item()
            .table_name("orders")
            .item("pk", D::S(format!("k{i:03}")))
            .send()
            .await
            .expect("PutItem");
    }
}

#[tokio::test]
async fn from_a_time_prints_only_what_was_created_since_then() {
    let moto = Moto::start();
    moto.create_table("orders", false).await;
    put_items(&moto, 0..4).await;
    // The next whole second: creation times are whole seconds.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let next = now.as_secs() + 1;
    tokio::time::sleep(Duration::from_secs(next) - now + Duration::from_millis(50)).await;
    put_items(&moto, 4..7).await;
    let from = DateTime::from_secs(i64::try_from(next).unwrap())
        .fmt(DateTimeFormat::DateTime)
        .unwrap();
    let mut command = tail(&[
        "--table",
        "orders",
        "--from",
        &from,
        "--until-caught-up",
        "--endpoint-url",
        moto.endpoint(),
    ]);
    command.envs(moto.env());
    let (status, lines, stderr) = run(command).await;
    assert!(status.success(), "{status:?}: {stderr}");
    let pks: Vec<&str> = lines
        .iter()
        .map(|l| l["keys"]["pk"].as_str().expect("a string pk"))
        .collect();
    assert_eq!(pks, ["k004", "k005", "k006"], "from {from}");
    for line in &lines {
        let created = line["approximate_creation_time"].as_str().unwrap();
        assert!(created >= from.as_str(), "{created} before {from}");
    }
}

#[tokio::test]
async fn a_malformed_time_is_a_bad_command_line() {
    for value in [
        "2026-12-01",
        "2026-12-01T10:00:00",
        "2026-13-01T10:00:00Z",
        "2026-12-01T25:00:00Z",
        "1969-12-31T23:59:59Z",
        "Trim-Horizon",
        "",
    ] {
        let (status, lines, stderr) = run(tail(&["--demo", "--from", value])).await;
        assert_eq!(status.code(), Some(2), "{value:?}: {stderr}");
        assert!(stderr.contains("Usage:"), "{value:?}: {stderr}");
        assert!(stderr.contains("RFC 3339"), "{value:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{value:?}: {stderr}");
        assert!(lines.is_empty());
    }
}
