//! The `tail` example's binary, for tests that run it as a process.

use std::path::Path;

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
