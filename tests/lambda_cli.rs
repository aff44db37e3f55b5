//! The `lambda` example run locally as a process: its lines, its last line (the batch
//! response), and its exit codes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use support::example::example_binary;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/lambda_event.json");

fn run(args: &[&str]) -> Output {
    Command::new(example_binary("lambda"))
        .args(args)
        .stdin(Stdio::null())
        .env_remove("RUST_LOG")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .output()
        .expect("the example starts")
}

fn parse_lines(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// The keys of each line, in order: the tail contract's, without `checkpoint`.
const FIELDS: [&str; 9] = [
    "event_id",
    "kind",
    "shard_id",
    "sequence_number",
    "approximate_creation_time",
    "keys",
    "new_image",
    "old_image",
    "ttl_delete",
];

fn field_order(out: &Output) -> Vec<Vec<String>> {
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let mut orders = Vec::new();
    for line in text.lines() {
        // serde_json's default map sorts keys: read the order from the text.
        let mut at = Vec::new();
        for field in FIELDS {
            if let Some(i) = line.find(&format!("\"{field}\":")) {
                at.push((i, field.to_owned()));
            }
        }
        at.sort();
        orders.push(at.into_iter().map(|(_, f)| f).collect());
    }
    orders
}

#[test]
fn every_change_is_a_tail_line_and_the_response_comes_last() {
    let out = run(&["--event", FIXTURE]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = parse_lines(&out);
    assert_eq!(lines.len(), 5);
    assert_eq!(
        lines[0],
        json!({
            "event_id": "c4ca4238a0b923820dcc509a6f75849b", "kind": "INSERT", "shard_id": null,
            "sequence_number": "111100000000000000000000001",
            "approximate_creation_time": "2026-11-23T19:23:46Z",
            "keys": {"pk": "order#1", "sk": 1},
            "new_image": {
                "address": {"city": "Paris", "lines": ["1 rue X", 75001]},
                "chunks": ["AAE=", "/w=="], "coupon": null, "customer": "grace",
                "exact": "12345678901234567890.123456789",
                "items": [{"qty": 1, "sku": "book"}, [false, null]],
                "paid": true, "photo": "aGVsbG8=", "pk": "order#1", "sizes": [42, -7.5],
                "sk": 1, "tags": ["gift", "new"], "total": 21.01
            },
            "old_image": null, "ttl_delete": false
        })
    );
    let kinds: Vec<_> = lines[..4]
        .iter()
        .map(|l| (l["kind"].clone(), l["ttl_delete"].clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            (json!("INSERT"), json!(false)),
            (json!("MODIFY"), json!(false)),
            (json!("REMOVE"), json!(false)),
            (json!("REMOVE"), json!(true)),
        ]
    );
    assert_eq!(lines[2]["new_image"], Value::Null);
    assert_eq!(lines[1]["old_image"]["status"], "PLACED");
    for order in &field_order(&out)[..4] {
        assert_eq!(order, &FIELDS);
    }
    assert!(lines.iter().all(|l| l.get("checkpoint").is_none()));
    let last = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(last.lines().last(), Some(r#"{"batchItemFailures":[]}"#));
}

#[test]
fn fail_on_key_stops_at_that_change_and_names_it() {
    let out = run(&["--event", FIXTURE, "--fail-on-key", "order#2"]);
    assert!(out.status.success());
    let lines = parse_lines(&out);
    // The failed change was printed before it failed; the ones after it were not handed over.
    let pks: Vec<_> = lines[..lines.len() - 1]
        .iter()
        .map(|l| l["keys"]["pk"].clone())
        .collect();
    assert_eq!(pks, [json!("order#1"), json!("order#2")]);
    assert_eq!(
        lines.last().unwrap(),
        &json!({"batchItemFailures": [{"itemIdentifier": "111100000000000000000000002"}]})
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("111100000000000000000000002"),
        "the failure is logged: {stderr}"
    );

    let none = run(&["--event", FIXTURE, "--fail-on-key", "order#9"]);
    assert_eq!(parse_lines(&none).len(), 5);
}

fn assert_fails_with_one_line(out: &Output, code: i32, mentions: &str) {
    assert_eq!(out.status.code(), Some(code));
    assert!(out.stdout.is_empty(), "nothing on stdout");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(mentions), "{stderr}");
}

#[test]
fn a_file_that_is_not_a_dynamodb_event_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, value: Value| {
        let path = dir.path().join(name);
        std::fs::write(&path, value.to_string()).unwrap();
        path
    };
    let sqs = write(
        "sqs.json",
        json!({"Records": [{"messageId": "1", "body": "hi", "eventSource": "aws:sqs"}]}),
    );
    let not_json = dir.path().join("text.json");
    std::fs::write(&not_json, "hello").unwrap();
    for path in [
        sqs.as_path(),
        not_json.as_path(),
        write("empty.json", json!({})).as_path(),
    ] {
        let out = run(&["--event", path.to_str().unwrap()]);
        assert_fails_with_one_line(&out, 1, "is not a Lambda DynamoDB event");
    }
    let missing = run(&["--event", "/nonexistent/event.json"]);
    assert_fails_with_one_line(&missing, 1, "cannot read /nonexistent/event.json");
    // An event of no records is a DynamoDB event: just the response.
    let out = run(&[
        "--event",
        write("none.json", json!({"Records": []})).to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"batchItemFailures\":[]}\n"
    );
}

#[test]
fn bad_command_lines_get_the_usage_and_exit_two_and_outside_lambda_it_says_so() {
    let out = run(&["--event", FIXTURE, "--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage:"));
    let out = run(&[]);
    assert_fails_with_one_line(&out, 1, "not running in AWS Lambda");
}
