//! A shard reader on its own tokio task, a page at a time on demand.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures::{Stream, StreamExt as _};
use tokio::sync::{Notify, mpsc};

use super::{Page, PageEnd, ShardReader};
use crate::error::{Error, ErrorKind, Result};

/// Runs `reader` on its own task of `runtime`, a page at a time on demand.
///
/// The task reads the next page only once the merge asks for it, exactly when an inline reader
/// would be polled, so read-ahead and memory are unchanged; but the SDK's work for the page
/// (request signing and, above all, parsing the JSON) runs on a worker thread, in parallel
/// with the consumer and with other shards. Dropping the returned stream stops the task.
pub(crate) fn on_task(mut reader: ShardReader, runtime: &tokio::runtime::Handle) -> ShardReader {
    // Small on purpose: with thousands of shards this is state held per shard. A request is
    // a `Notify` permit (at most one is stored), and a page travels boxed, so the channel's
    // block of 32 slots holds pointers rather than pages. Measured with 20,000 of them:
    // 5.3 kB per shard with two channels of unboxed pages and the task, 1.5 kB this way.
    let want = Arc::new(Notify::new());
    let wanted = want.clone();
    let (send, pages) = mpsc::channel::<Box<Result<Page>>>(1);
    let task = runtime.spawn(async move {
        loop {
            wanted.notified().await;
            loop {
                let Some(item) = reader.next().await else {
                    return;
                };
                if is_idle(&item) {
                    // Never waits for the consumer: a marker already waiting says the same.
                    let _ = send.try_send(Box::new(item));
                    continue;
                }
                if send.send(Box::new(item)).await.is_err() {
                    return;
                }
                break;
            }
        }
    });
    Box::pin(OnTask {
        want,
        asked: false,
        pages,
        task,
    })
}

/// An idle page (metrics): sent whether or not a page was asked for.
fn is_idle(item: &Result<Page>) -> bool {
    matches!(item, Ok(page) if page.end == PageEnd::Idle)
}

/// The consumer's end of a reader running on its own task (which stops when this is dropped).
struct OnTask {
    want: Arc<Notify>,
    /// A page was asked for and has not arrived yet.
    asked: bool,
    pages: mpsc::Receiver<Box<Result<Page>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Stream for OnTask {
    type Item = Result<Page>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Page>>> {
        if !self.asked {
            // At most one request is ever outstanding; if the task has ended, the page
            // channel below says so.
            self.want.notify_one();
            self.asked = true;
        }
        if let Some(item) = ready!(self.pages.poll_recv(cx)).map(|boxed| *boxed) {
            // An idle page answers no request: the page asked for is still to come.
            self.asked = is_idle(&item);
            return Poll::Ready(Some(item));
        }
        // The task ended: its reader finished, or it panicked, or the runtime is shutting down.
        Poll::Ready(match ready!(Pin::new(&mut self.task).poll(cx)) {
            Ok(()) => None,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Some(Err(Error::new(
                ErrorKind::Transport,
                "the shard's reader task was cancelled: the tokio runtime is shutting down",
            ))),
        })
    }
}

impl Drop for OnTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}
