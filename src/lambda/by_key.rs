//! A batch with different items processed concurrently, each item's changes in order.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::streams::DynamoDbEventResponse;
use futures::StreamExt as _;

use super::batch::{Failure, attempt, failed_at};
use super::convert::Converter;
use crate::event::{Change, ItemKey};

/// Like [`process_in_order`](super::process_in_order), with the changes of different items
/// (by their key attributes) given to `handler` concurrently, up to `max_concurrent` items at
/// a time (0 counts as 1); one item's changes still run one at a time, in the batch's order.
///
/// The response names the failed record lowest in the batch, which is what Lambda needs: it
/// retries from that record, so every record before it must be done. The helper guarantees
/// that they are: a record below the lowest failure so far always runs, whichever item it
/// belongs to; a record above it is skipped (Lambda delivers it again), and so is every
/// later change of an item after that item's own failure. Changes of other items above the
/// failure that already ran are delivered again by the retry: at least once, as always.
///
/// A Lambda batch comes from one shard, so "lowest in the batch" is the lowest failed sequence
/// number of that shard. Items are told apart by their exact key attribute values.
///
/// ```no_run
/// use dynamodb_stream::Change;
/// use dynamodb_stream::lambda::{DynamoDbEventResponse, Event, process_by_key};
///
/// async fn apply(change: &Change) -> Result<(), String> {
///     Ok(()) // write to another store, call a service, ...
/// }
///
/// async fn on_batch(event: Event) -> DynamoDbEventResponse {
///     process_by_key(event, 16, async |change: &Change| apply(change).await).await
/// }
/// ```
pub async fn process_by_key<F, E>(
    event: Event,
    max_concurrent: usize,
    handler: F,
) -> DynamoDbEventResponse
where
    F: AsyncFn(&Change) -> Result<(), E>,
    E: fmt::Display,
{
    let mut converter = Converter::default();
    let mut positions = Vec::with_capacity(event.records.len());
    let mut changes = Vec::with_capacity(event.records.len());
    let mut malformed = None;
    for (index, record) in event.records.into_iter().enumerate() {
        positions.push(record.change.sequence_number.clone());
        match converter.convert(record) {
            Ok(change) => changes.push((index, change)),
            Err(e) => {
                malformed.get_or_insert((index, Failure::Malformed(e)));
            }
        }
    }
    // Nothing after a malformed record needs to run: Lambda retries from it.
    let lowest = AtomicUsize::new(malformed.as_ref().map_or(usize::MAX, |(i, _)| *i));
    // The lanes' futures are made before the stream (they start only when polled): a closure
    // kept inside it would make this future `Send` for no caller (higher-ranked lifetimes).
    let lanes: Vec<_> = lanes(&changes)
        .into_iter()
        .map(|lane| run_lane(lane, &handler, &lowest))
        .collect();
    let failures: Vec<(usize, Failure<E>)> = futures::stream::iter(lanes)
        .buffer_unordered(max_concurrent.max(1))
        .filter_map(futures::future::ready)
        .collect()
        .await;
    let first = failures
        .into_iter()
        .chain(malformed)
        .min_by_key(|(index, _)| *index);
    match first {
        Some((index, failure)) => failed_at(positions.get(index).cloned().flatten(), &failure),
        None => DynamoDbEventResponse::default(),
    }
}

/// One item's changes, in order, until the first that fails or the first above the lowest
/// failure of the batch so far; returns the failure.
async fn run_lane<F, E>(
    lane: Vec<(usize, &Change)>,
    handler: &F,
    lowest: &AtomicUsize,
) -> Option<(usize, Failure<E>)>
where
    F: AsyncFn(&Change) -> Result<(), E>,
{
    for (index, change) in lane {
        // Relaxed is enough: every lane runs on this one task, polled in turn.
        if index > lowest.load(Ordering::Relaxed) {
            return None;
        }
        if let Err(failure) = attempt(handler, change).await {
            lowest.fetch_min(index, Ordering::Relaxed);
            return Some((index, failure));
        }
    }
    None
}

/// The batch's changes grouped by item, each group in the batch's order, the groups in the
/// order of their first change (so that lower records start first).
fn lanes(changes: &[(usize, Change)]) -> Vec<Vec<(usize, &Change)>> {
    let mut lane_of: HashMap<ItemKey, usize> = HashMap::new();
    let mut lanes: Vec<Vec<(usize, &Change)>> = Vec::new();
    for (index, change) in changes {
        let next = lanes.len();
        let lane = *lane_of.entry(change.item_key()).or_insert(next);
        if lane == next {
            lanes.push(Vec::new());
        }
        if let Some(lane) = lanes.get_mut(lane) {
            lane.push((*index, change));
        }
    }
    lanes
}
