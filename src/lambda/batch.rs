//! A batch, one change at a time, stopping at the first failure.

use std::any::Any;
use std::fmt;
use std::panic::AssertUnwindSafe;

use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures::FutureExt as _;

use super::convert::Converter;
use crate::event::Change;

/// Gives the batch's changes to `handler` in order, one at a time, and stops at the first
/// failure; returns the partial-batch response that names the failed record.
///
/// A failure is an `Err` from `handler`, a panic inside it (caught: it fails that record, not
/// the runtime), or a record that cannot be converted
/// ([`ErrorKind::MalformedRecord`](crate::ErrorKind::MalformedRecord)). The response names
/// that record's sequence number: Lambda counts every record before it as done and retries the
/// batch from it. When every change succeeds the list of failures is empty. Each failure is
/// logged as a `tracing` warning with its cause.
///
/// The response serializes as `ReportBatchItemFailures` expects:
/// `{"batchItemFailures":[{"itemIdentifier":"<sequence number>"}]}`. A record with no
/// sequence number at all is named with a `null` identifier, which Lambda takes as a failure
/// of the whole batch. Panics are caught only where they unwind (not with `panic = "abort"`).
///
/// ```
/// use dynamodb_stream::lambda::{Event, process_in_order};
/// use dynamodb_stream::{Change, EventKind};
///
/// async fn handle(change: &Change) -> Result<(), String> {
///     match change.kind() {
///         EventKind::Remove if change.is_ttl_delete() => Ok(()), // expired: nothing to undo
///         _ => Err(format!("cannot handle {} yet", change.event_id())),
///     }
/// }
///
/// # fn main() -> Result<(), serde_json::Error> {
/// let event: Event = serde_json::from_str(r#"{"Records": [{
///     "eventID": "1", "eventName": "INSERT", "eventSource": "aws:dynamodb",
///     "awsRegion": "us-east-1",
///     "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/T/stream/2026-01-01T00:00:00.000",
///     "dynamodb": {"Keys": {"pk": {"S": "a"}}, "SequenceNumber": "100000000000000000001",
///                  "SizeBytes": 8, "StreamViewType": "KEYS_ONLY"}}]}"#)?;
/// let response = futures::executor::block_on(process_in_order(event, async |change: &Change| {
///     handle(change).await
/// }));
/// assert_eq!(
///     serde_json::to_string(&response)?,
///     r#"{"batchItemFailures":[{"itemIdentifier":"100000000000000000001"}]}"#
/// );
/// # Ok(())
/// # }
/// ```
pub async fn process_in_order<F, E>(event: Event, mut handler: F) -> DynamoDbEventResponse
where
    F: AsyncFnMut(&Change) -> Result<(), E>,
    E: fmt::Display,
{
    let mut converter = Converter::default();
    for record in event.records {
        let position = record.change.sequence_number.clone();
        let outcome = match converter.convert(record) {
            Ok(change) => attempt(&mut handler, &change).await,
            Err(e) => Err(Failure::Malformed(e)),
        };
        if let Err(failure) = outcome {
            return failed_at(position, &failure);
        }
    }
    DynamoDbEventResponse::default()
}

/// Why a record failed.
pub(super) enum Failure<E> {
    Handler(E),
    Panic(String),
    Malformed(crate::Error),
}

impl<E: fmt::Display> fmt::Display for Failure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Handler(e) => write!(f, "the handler failed: {e}"),
            Self::Panic(message) => write!(f, "the handler panicked: {message}"),
            Self::Malformed(e) => write!(f, "{e}"),
        }
    }
}

/// Runs `handler` on one change; a panic inside it is that change's failure.
pub(super) async fn attempt<F, E>(handler: F, change: &Change) -> Result<(), Failure<E>>
where
    F: AsyncFnOnce(&Change) -> Result<(), E>,
{
    // Unwind safety: after a panic the handler is never called again for this batch, so no
    // state it broke is observed here.
    match AssertUnwindSafe(handler(change)).catch_unwind().await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Failure::Handler(e)),
        Err(payload) => Err(Failure::Panic(panic_message(&*payload))),
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// The response naming the record at `position` (its `SequenceNumber` as Lambda sent it).
pub(super) fn failed_at<E: fmt::Display>(
    position: Option<String>,
    failure: &Failure<E>,
) -> DynamoDbEventResponse {
    tracing::warn!(
        sequence_number = position.as_deref().unwrap_or("none"),
        "record failed; Lambda retries the batch from it: {failure}"
    );
    let mut item = DynamoDbBatchItemFailure::default();
    item.item_identifier = position;
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures.push(item);
    response
}
