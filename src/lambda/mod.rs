//! The same [`Change`](crate::Change) from a Lambda DynamoDB trigger, and batch helpers that
//! report partial failures (feature `lambda`).
//!
//! Lambda's event source mapping reads the stream and hands a function batches of records
//! ([`Event`], from `aws_lambda_events`). [`changes`] turns each record into a
//! [`Change`](crate::Change) through the code path a [`ChangeStream`](crate::ChangeStream)
//! uses for the records it reads: the same kind, keys, images, typed access, TTL-delete flag,
//! sequence number, and the same error for a record that cannot be placed
//! ([`ErrorKind::MalformedRecord`](crate::ErrorKind::MalformedRecord), for that record only).
//!
//! # A `Change`, not a `ChangeEvent`
//! Lambda keeps the position in the stream, not the handler: it moves past a batch when the
//! function succeeds, and retries from the record a partial-batch response names. A Lambda
//! record does not even name its shard, so no resumable checkpoint can be built from it. A
//! record is therefore a [`Change`](crate::Change), which has no `checkpoint()` to call,
//! rather than a [`ChangeEvent`](crate::ChangeEvent) whose checkpoint would mean nothing. A
//! handler written against `&Change` runs unchanged over a self-hosted stream, where a
//! `&ChangeEvent` dereferences to its `&Change`.
//!
//! Two fields differ from a self-hosted stream's change:
//! [`Change::shard_id`](crate::Change::shard_id) is `None`, and
//! [`Change::stream_arn`](crate::Change::stream_arn) is the record's `eventSourceARN`.
//!
//! # Batches
//! [`process_in_order`] gives the batch's changes to an async closure one at a time and stops
//! at the first failure: an `Err` from the closure, a panic inside it, or a malformed record.
//! It returns the response that names that record's sequence number, so Lambda retries the
//! batch from that record, everything before it being done. [`process_by_key`] runs the
//! changes of different items concurrently, each item's changes still in order. Both need the
//! event source mapping's `FunctionResponseTypes: ["ReportBatchItemFailures"]`: without it
//! Lambda ignores the response and counts the batch as processed.
//!
//! # What `aws_lambda_events` decides
//! The records arrive parsed by `aws_lambda_events`, which fills in defaults where the JSON
//! has nothing: an absent image becomes an empty map, an absent creation time the Unix epoch.
//! The conversion turns both back into "absent" (an item always holds its key attributes, so
//! a real image is never empty, and no change was made in 1970). A record that does not fit
//! that type at all (no `dynamodb` section, no `SizeBytes`, bad base64 in a binary attribute)
//! fails the whole event's deserialization before this module sees it: the runtime reports an
//! error and Lambda retries the whole batch, split in halves if `BisectBatchOnFunctionError`
//! is set.

mod batch;
mod by_key;
mod convert;

pub use aws_lambda_events::dynamodb::{Event, EventRecord};
pub use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
pub use batch::process_in_order;
pub use by_key::process_by_key;
pub use convert::changes;
