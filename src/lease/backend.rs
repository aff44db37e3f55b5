//! Where lease items live: a DynamoDB table (`dynamo`) or, for tests, process memory
//! (`memory`). Both give every write the same atomic, conditional meaning (see `model::Op`).

use std::fmt;

use futures::future::BoxFuture;

use super::model::{Control, Op, Outcome, ShardLease};
use crate::api::Failure;

/// A call's result: a failed call says whether retrying may help (`Failure::fault`).
pub(crate) type Call<'a, T> = BoxFuture<'a, Result<T, Failure>>;

pub(crate) trait LeaseBackend: Send + Sync + fmt::Debug {
    /// Checks that the table exists with the lease schema; with `create`, creates a missing
    /// table first.
    fn prepare(&self, create: bool) -> Call<'_, ()>;

    /// The control items of partition `pk` (meta, workers, asks), read consistently.
    fn control<'a>(&'a self, pk: &'a str) -> Call<'a, Control>;

    /// Every shard item of partition `pk`, read consistently.
    fn shards<'a>(&'a self, pk: &'a str) -> Call<'a, Vec<ShardLease>>;

    /// One conditional write to partition `pk`.
    fn write<'a>(&'a self, pk: &'a str, op: Op) -> Call<'a, Outcome>;
}
