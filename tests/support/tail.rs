//! The `tail` example's binary, for tests that run it as a process.

use std::path::Path;

use super::example::example_binary;

/// The `tail` example, built once per test run.
pub fn tail_binary() -> &'static Path {
    example_binary("tail")
}
