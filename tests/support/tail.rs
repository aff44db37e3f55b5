//! The `tail` example's binary, for tests that run it as a process.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The example binary, built once per test run: `cargo test --test <name>` builds only that
/// test, not the examples, so ask Cargo for it with the same profile and features.
pub fn tail_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test's own path");
        // target/<profile>/deps/tail_cli-<hash>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test runs from target/<profile>/deps");
        let target_dir = profile_dir.parent().expect("a target directory");
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev",
            Some(name) => name,
        };
        let mut features = Vec::new();
        if cfg!(feature = "aws-config") {
            features.push("aws-config");
        }
        if cfg!(feature = "test-util") {
            features.push("test-util");
        }
        if cfg!(feature = "dynamodb-store") {
            features.push("dynamodb-store");
        }
        let mut cargo = std::process::Command::new(env!("CARGO"));
        // Cargo sets these for the test process; some build scripts (ring's) watch them, and
        // a different value would make this build and the next `cargo test` rebuild them.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("CARGO_PKG_")
                || name.starts_with("CARGO_MANIFEST_")
                || ["CARGO_CRATE_NAME", "CARGO_PRIMARY_PACKAGE", "OUT_DIR"].contains(&&*name)
            {
                cargo.env_remove(&*name);
            }
        }
        let status = cargo
            .args([
                "build",
                "--quiet",
                "--example",
                "tail",
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
        assert!(status.success(), "cargo build --example tail failed");
        profile_dir
            .join("examples")
            .join(format!("tail{}", std::env::consts::EXE_SUFFIX))
    })
}
