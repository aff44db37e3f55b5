//! Shared helpers for the behaviour tests. Each test binary uses a part of them.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

#[cfg(feature = "test-util")]
pub mod attrs;
pub mod example;
#[cfg(all(feature = "test-util", feature = "dynamodb-store"))]
pub mod leases;
pub mod moto;
pub mod proxy;
#[cfg(feature = "test-util")]
pub mod rewrite;
#[cfg(feature = "test-util")]
pub mod sim;
pub mod tail;
#[cfg(feature = "test-util")]
pub mod wire;
