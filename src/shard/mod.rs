//! One shard as a stream of pages: the calls a [`Cursor`] asks for, made through the
//! [`Context`], until the shard is read.

mod cursor;
mod task;

use std::sync::Arc;

use futures::Stream;

use crate::api::Context;
use crate::checkpoint::resume::ShardStart;
use crate::error::Result;
use crate::event::Change;

use cursor::{Cursor, Step, Then};
pub(crate) use cursor::{Page, PageEnd};

impl Page {
    /// The page that says `shard` had nothing new on the last call.
    fn idle(shard: std::sync::Arc<str>) -> Self {
        Self {
            shard,
            changes: Vec::new(),
            end: PageEnd::Idle,
            gap: None,
            reservation: crate::budget::Reservation::default(),
        }
    }
}
pub(crate) use task::on_task;

pub(crate) type ShardReader = std::pin::Pin<Box<dyn Stream<Item = Result<Page>> + Send>>;

/// Reads one shard from `start` to its end (or, in catch-up mode, to its current end);
/// `closed`: the listing had its end, so empty pages are read on at once.
///
/// Yields only pages with records, plus the final page (which may be empty), and with the
/// metrics an idle page after each empty one (the reader polls on without waiting for it to
/// be taken: see `on_task` and the pool). Recovers from
/// expired iterators silently; retries transient faults within the budget; any other error is
/// yielded once and ends the stream.
pub(crate) fn read_shard(
    ctx: Arc<Context>,
    shard: Arc<str>,
    start: ShardStart,
    closed: bool,
) -> ShardReader {
    Box::pin(async_stream::stream! {
        tracing::info!(shard = %shard, ?start, "shard started");
        let mut cursor = Cursor::new(&ctx.stream_arn, shard, start, &ctx.options);
        if closed {
            cursor.closed();
        }
        loop {
            let Step { page, then } = call(&ctx, &mut cursor).await;
            if let Some(page) = page {
                yield Ok(page);
            } else if crate::telemetry::IDLE_PAGES && matches!(then, Then::Sleep(_)) {
                yield Ok(Page::idle(cursor.shard().clone()));
            }
            match then {
                Then::ReadOn => {}
                Then::Sleep(delay) => tokio::time::sleep(delay).await,
                Then::Done => return,
                Then::Fail(e) => {
                    yield Err(e);
                    return;
                }
            }
        }
    })
}

/// One `GetRecords` (after a `GetShardIterator` when the cursor holds no iterator), and what
/// the cursor makes of the answer.
async fn call(ctx: &Context, cursor: &mut Cursor) -> Step {
    let iterator = match cursor.take_iterator() {
        Some(iterator) => iterator,
        None => {
            let (kind, seq) = cursor.iterator_request();
            match Box::pin(ctx.shard_iterator(cursor.shard(), kind, seq.as_ref())).await {
                Ok(iterator) => iterator,
                Err(failure) => return cursor.on_failure(failure),
            }
        }
    };
    let mut reservation = ctx.budget.reserve().await;
    // Boxed: the SDK's call futures are large, and a reader waiting for its turn (or asleep)
    // should not hold their room; with thousands of shards that adds up.
    match Box::pin(ctx.get_records(cursor.shard(), &iterator)).await {
        Ok(page) => {
            let bytes = page.bytes();
            let (changes, malformed, next) = page.into_changes(cursor.origin());
            if let Some(bytes) = bytes {
                reservation.shrink_to(bytes + Change::footprint(&changes));
            }
            let mut step = cursor.on_page(changes, malformed, next);
            if let Some(page) = step.page.as_mut() {
                page.reservation = reservation;
            }
            step
        }
        Err(failure) => cursor.on_failure(failure),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Options;

    /// With thousands of shards, each reader's own state is memory held per shard, whether
    /// it reads or waits for its turn: the SDK's call futures are boxed only while a call runs.
    #[test]
    fn a_reader_holds_little_between_calls() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let config = aws_sdk_dynamodbstreams::Config::builder()
            .behavior_version(aws_sdk_dynamodbstreams::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodbstreams::config::Region::new("us-east-1"))
            .build();
        let client = aws_sdk_dynamodbstreams::Client::from_conf(config);
        let ctx = Arc::new(Context::new(client, "arn".into(), Options::default()));
        let reader = read_shard(ctx, "shard".into(), ShardStart::TrimHorizon, false);
        let size = std::mem::size_of_val(&*reader);
        eprintln!("reader state: {size} bytes");
        assert!(size < 4096, "a reader's state takes {size} bytes");
    }
}
