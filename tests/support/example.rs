//! The examples' binaries, for tests that run them as processes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// The example `name`, built once per test run: `cargo test --test <name>` builds only that
/// test, not the examples, so ask Cargo for it with the same profile and features.
pub fn example_binary(name: &'static str) -> &'static Path {
    static BINARIES: OnceLock<Mutex<HashMap<&'static str, &'static Path>>> = OnceLock::new();
    let mut built = BINARIES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // Held while building: two tests asking at once wait for one build.
    built
        .entry(name)
        .or_insert_with(|| Box::leak(build(name).into_boxed_path()))
}

fn build(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/<test>-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    let target_dir = profile_dir.parent().expect("a target directory");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev",
        Some(name) => name,
    };
    let features: Vec<&str> = [
        ("aws-config", cfg!(feature = "aws-config")),
        ("test-util", cfg!(feature = "test-util")),
        ("dynamodb-store", cfg!(feature = "dynamodb-store")),
        ("lambda", cfg!(feature = "lambda")),
    ]
    .into_iter()
    .filter_map(|(feature, on)| on.then_some(feature))
    .collect();
    let mut cargo = std::process::Command::new(env!("CARGO"));
    // Cargo sets these for the test process; some build scripts (ring's) watch them, and
    // a different value would make this build and the next `cargo test` rebuild them.
    for (var, _) in std::env::vars_os() {
        let var = var.to_string_lossy();
        if var.starts_with("CARGO_PKG_")
            || var.starts_with("CARGO_MANIFEST_")
            || ["CARGO_CRATE_NAME", "CARGO_PRIMARY_PACKAGE", "OUT_DIR"].contains(&&*var)
        {
            cargo.env_remove(&*var);
        }
    }
    let status = cargo
        .args([
            "build",
            "--quiet",
            "--example",
            name,
            "--no-default-features",
        ])
        .args(["--features", &features.join(",")])
        .args(["--profile", profile])
        .arg("--manifest-path")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo build --example {name} failed");
    profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}
