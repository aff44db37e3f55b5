//! [`ProcessByKey`]: the events of different items processed concurrently, each item's events
//! in order, and a checkpoint yielded only once everything before it is done.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::{FusedStream, FuturesUnordered};
use futures::{Stream, StreamExt as _};
use pin_project::pin_project;

use crate::checkpoint::Checkpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::event::{ChangeEvent, ItemKey};

/// Combinators for streams of [`ChangeEvent`]s, such as a [`ChangeStream`](crate::ChangeStream).
pub trait ChangeStreamExt: Stream<Item = Result<ChangeEvent>> + Sized {
    /// Runs `handler` on every event, the events of different items (by their key attributes)
    /// concurrently, at most `concurrency` at a time (0 counts as 1), each item's events one at
    /// a time and in the stream's order: Lambda's parallelization factor, in process.
    ///
    /// The returned stream yields the checkpoint of each event once the event *and every event
    /// before it* is done, in the stream's order: acknowledging them (a
    /// [`Committer`](crate::Committer) over this stream) stays at least once however the
    /// handlers interleave. At most `8 × concurrency` events are held (running, waiting for
    /// their item, or done and waiting for an earlier one) before the input stops being read,
    /// so memory stays bounded however slow one event is.
    ///
    /// A handler's error (or an error of the input) is yielded after the checkpoints of the
    /// events before it, as [`ErrorKind::Handler`] with the handler's error as its source, and
    /// ends the stream: handlers still running are dropped, and nothing after the failed event
    /// is acknowledged, so a restart from the last save delivers it again.
    ///
    /// The handlers run on the task that polls the stream, interleaved (as `buffer_unordered`
    /// does); spawn inside a handler for work that needs its own thread.
    ///
    /// ```no_run
    /// use dynamodb_stream::{ChangeEvent, ChangeStream, ChangeStreamExt, Committer};
    /// use dynamodb_stream::store::FileStore;
    /// use futures::StreamExt;
    ///
    /// async fn apply(event: &ChangeEvent) -> Result<(), std::io::Error> {
    ///     Ok(()) // write to another store, call a service, ...
    /// }
    ///
    /// # async fn run(stream: ChangeStream) -> dynamodb_stream::Result<()> {
    /// let done = stream.process_by_key(16, |event| async move { apply(&event).await });
    /// let mut saved = Committer::new(done, FileStore::new("orders.checkpoint"));
    /// while let Some(checkpoint) = saved.next().await {
    ///     saved.ack(&checkpoint?);
    /// }
    /// saved.close().await?;
    /// # Ok(()) }
    /// ```
    fn process_by_key<F, Fut, E>(self, concurrency: usize, handler: F) -> ProcessByKey<Self, F, Fut>
    where
        F: FnMut(ChangeEvent) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let concurrency = concurrency.max(1);
        ProcessByKey {
            input: self.fuse(),
            handler,
            concurrency,
            running: FuturesUnordered::new(),
            busy: HashMap::new(),
            order: VecDeque::new(),
            next: 0,
            failed: None,
            done: false,
        }
    }
}

impl<S: Stream<Item = Result<ChangeEvent>>> ChangeStreamExt for S {}

/// The stream of [`ChangeStreamExt::process_by_key`].
#[must_use = "streams do nothing unless polled"]
#[pin_project(project = Projection)]
pub struct ProcessByKey<S, F, Fut> {
    #[pin]
    input: futures::stream::Fuse<S>,
    handler: F,
    concurrency: usize,
    running: FuturesUnordered<Running<Fut>>,
    /// Items with an event running, and their events waiting behind it.
    busy: HashMap<ItemKey, VecDeque<(u64, ChangeEvent)>>,
    /// Every event taken from the input and not yet yielded, in order (the front's index is
    /// `next - order.len()`): its checkpoint (`None`: the input's error) and whether it is done.
    order: VecDeque<(Option<Checkpoint>, bool)>,
    next: u64,
    /// The first failure: the event's index and its error.
    failed: Option<(u64, Error)>,
    done: bool,
}

/// One handler's future, with the event's index and item.
#[pin_project]
struct Running<Fut> {
    index: u64,
    key: Option<ItemKey>,
    #[pin]
    future: Fut,
}

impl<Fut, E> Future for Running<Fut>
where
    Fut: Future<Output = Result<(), E>>,
{
    type Output = (u64, Option<ItemKey>, Result<(), E>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.future.poll(cx));
        Poll::Ready((*this.index, this.key.take(), result))
    }
}

impl<S, F, Fut, E> Stream for ProcessByKey<S, F, Fut>
where
    S: Stream<Item = Result<ChangeEvent>>,
    F: FnMut(ChangeEvent) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Item = Result<Checkpoint>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        loop {
            if let Some(item) = yield_ready(this.order, *this.next, this.failed) {
                if item.is_err() {
                    *this.done = true;
                }
                return Poll::Ready(Some(item));
            }
            let mut progressed = take_input(&mut this, cx);
            match this.running.poll_next_unpin(cx) {
                Poll::Ready(Some((index, key, result))) => {
                    progressed = true;
                    on_done(&mut this, index, key, result);
                }
                Poll::Ready(None) if this.input.is_terminated() && this.order.is_empty() => {
                    *this.done = true;
                    return Poll::Ready(None);
                }
                _ => {}
            }
            if !progressed {
                return Poll::Pending;
            }
        }
    }
}

/// Takes events from the input while there is room, starting each at once unless its item
/// is busy (then it waits behind it). Whether anything was taken.
fn take_input<S, F, Fut>(this: &mut Projection<'_, S, F, Fut>, cx: &mut Context<'_>) -> bool
where
    S: Stream<Item = Result<ChangeEvent>>,
    F: FnMut(ChangeEvent) -> Fut,
{
    let mut progressed = false;
    while this.failed.is_none()
        && this.running.len() < *this.concurrency
        && this.order.len() < 8 * *this.concurrency
    {
        let index = *this.next;
        match this.input.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(event))) => {
                progressed = true;
                *this.next += 1;
                this.order
                    .push_back((Some(event.checkpoint().clone()), false));
                let key = event.item_key();
                if let Some(queue) = this.busy.get_mut(&key) {
                    queue.push_back((index, event));
                    continue;
                }
                this.busy.insert(key, VecDeque::new());
                let future = (this.handler)(event);
                this.running.push(Running {
                    index,
                    key: Some(key),
                    future,
                });
            }
            Poll::Ready(Some(Err(e))) => {
                progressed = true;
                *this.next += 1;
                *this.failed = Some((index, e));
                this.order.push_back((None, false));
            }
            Poll::Ready(None) | Poll::Pending => break,
        }
    }
    progressed
}

/// A handler finished: mark its event done (or failed) and start the item's next event.
fn on_done<S, F, Fut, E>(
    this: &mut Projection<'_, S, F, Fut>,
    index: u64,
    key: Option<ItemKey>,
    result: Result<(), E>,
) where
    F: FnMut(ChangeEvent) -> Fut,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match result {
        Ok(()) => {
            let front = *this.next - this.order.len() as u64;
            let at = usize::try_from(index.saturating_sub(front)).unwrap_or(usize::MAX);
            if let Some(entry) = this.order.get_mut(at) {
                entry.1 = true;
            }
        }
        Err(e) => {
            let error = Error::new(
                ErrorKind::Handler,
                format!("the handler failed on event {index}"),
            )
            .with_source(e);
            if this.failed.as_ref().is_none_or(|(at, _)| index < *at) {
                *this.failed = Some((index, error));
            }
        }
    }
    let Some(key) = key else { return };
    let next = this.busy.get_mut(&key).and_then(VecDeque::pop_front);
    match next {
        // Events before a failure still run (their checkpoints come before the error); those
        // after it are dropped.
        Some((next_index, event))
            if this.failed.as_ref().is_none_or(|(at, _)| next_index < *at) =>
        {
            let future = (this.handler)(event);
            this.running.push(Running {
                index: next_index,
                key: Some(key),
                future,
            });
        }
        _ => {
            this.busy.remove(&key);
        }
    }
}

/// The next checkpoint whose event and all events before it are done, or the failure once
/// everything before the failed event is yielded.
fn yield_ready(
    order: &mut VecDeque<(Option<Checkpoint>, bool)>,
    next: u64,
    failed: &mut Option<(u64, Error)>,
) -> Option<Result<Checkpoint>> {
    let front = next - order.len() as u64;
    let (_, done) = order.front()?;
    if failed.as_ref().is_some_and(|(at, _)| *at == front) {
        order.clear();
        return failed.take().map(|(_, e)| Err(e));
    }
    if !*done {
        return None;
    }
    order
        .pop_front()
        .and_then(|(checkpoint, _)| checkpoint)
        .map(Ok)
}

impl<S, F, Fut, E> FusedStream for ProcessByKey<S, F, Fut>
where
    S: Stream<Item = Result<ChangeEvent>>,
    F: FnMut(ChangeEvent) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<S, F, Fut> fmt::Debug for ProcessByKey<S, F, Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessByKey")
            .field("concurrency", &self.concurrency)
            .field("running", &self.running.len())
            .field("pending", &self.order.len())
            .finish_non_exhaustive()
    }
}
