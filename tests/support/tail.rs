//! The `tail` example's binary, for tests that run it as a process.

use std::path::Path;

use serde_json::Value;

use super::example::example_binary;

/// The `tail` example, built once per test run.
pub fn tail_binary() -> &'static Path {
    example_binary("tail")
}

/// `tail` with `args`, its output piped, killed when dropped, with a clean AWS environment:
/// no log filter, and no profile of the machine's that could point elsewhere.
pub fn tail_command(args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(tail_binary());
    command
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .env_remove("RUST_LOG")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    command
}

/// `tail`'s output lines without what depends on timing (creation times, and checkpoints,
/// which hold sibling shards' positions as of the moment), grouped by shard: siblings
/// interleave as their pages arrive, while each shard's own order is kept, so two runs that
/// print the same records in each shard's order compare equal.
pub fn by_shard(lines: &[Value]) -> Vec<Value> {
    let mut records: Vec<Value> = lines
        .iter()
        .map(|l| {
            let mut l = l.clone();
            l["approximate_creation_time"] = Value::Null;
            l["checkpoint"] = Value::Null;
            l
        })
        .collect();
    records.sort_by_key(|l| l["shard_id"].to_string());
    records
}
