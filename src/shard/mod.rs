//! One shard as a stream of pages: the calls a [`Cursor`] asks for, made through the
//! [`Context`], until the shard is read.

mod cursor;
mod task;

use std::sync::Arc;

use futures::Stream;

use crate::api::Context;
use crate::checkpoint::resume::ShardStart;
use crate::error::Result;

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
        }
    }
}
pub(crate) use task::on_task;

pub(crate) type ShardReader = std::pin::Pin<Box<dyn Stream<Item = Result<Page>> + Send>>;

/// Reads one shard from `start` to its end (or, in catch-up mode, to its current end).
///
/// Yields only pages with records, plus the final page (which may be empty), and with the
/// metrics an idle page after each empty one (the reader polls on without waiting for it to
/// be taken: see `on_task` and the pool). Recovers from
/// expired iterators silently; retries transient faults within the budget; any other error is
/// yielded once and ends the stream.
pub(crate) fn read_shard(ctx: Arc<Context>, shard: Arc<str>, start: ShardStart) -> ShardReader {
    Box::pin(async_stream::stream! {
        tracing::info!(shard = %shard, ?start, "shard started");
        let mut cursor = Cursor::new(&ctx.stream_arn, shard, start, &ctx.options);
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
            match ctx.shard_iterator(cursor.shard(), kind, seq.as_ref()).await {
                Ok(iterator) => iterator,
                Err(failure) => return cursor.on_failure(failure),
            }
        }
    };
    match ctx.get_records(cursor.shard(), &iterator).await {
        Ok(page) => {
            let (changes, malformed, next) = page.into_changes(cursor.origin());
            cursor.on_page(changes, malformed, next)
        }
        Err(failure) => cursor.on_failure(failure),
    }
}
