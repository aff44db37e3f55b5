//! [`Committer`]: saves processed positions to a [`CheckpointStore`] as a stream is consumed.

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use futures::stream::FusedStream;
use tokio::time::{Instant, Sleep};

use crate::checkpoint::{Checkpoint, SkipWatch};
use crate::error::Result;
use crate::event::ChangeEvent;
use crate::store::CheckpointStore;

type SaveFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// What a [`Committer`] can acknowledge: an item that carries the checkpoint of what it stands
/// for (a [`ChangeEvent`], or the [`Checkpoint`] a
/// [`process_by_key`](crate::ChangeStreamExt::process_by_key) stream yields).
pub trait HasCheckpoint {
    /// The checkpoint saved once the item is acknowledged.
    fn checkpoint(&self) -> &Checkpoint;
}

impl HasCheckpoint for ChangeEvent {
    fn checkpoint(&self) -> &Checkpoint {
        ChangeEvent::checkpoint(self)
    }
}

impl HasCheckpoint for Checkpoint {
    fn checkpoint(&self) -> &Checkpoint {
        self
    }
}

/// Passes a stream of events through unchanged and saves the position of the events you
/// acknowledge, at most every N acknowledgements or T of time, whichever comes first.
///
/// # At least once
/// Call [`ack`](Self::ack) for an event once it is **processed** (its effects are durable),
/// and in the order the events came. Only acknowledged positions are saved, so a crash never
/// skips an unprocessed event; the events acknowledged after the last save are delivered
/// again after a restart. [`close`](Self::close) saves the last acknowledged position, so a
/// graceful shutdown repeats nothing.
///
/// # When saves happen
/// When the committer is polled for the next event and either [`every`](Self::every)
/// acknowledgements have accumulated since the last save, or the oldest unsaved one is
/// [`interval`](Self::interval) old (on tokio's clock; this also fires while the stream is
/// idle and being polled), or an acknowledged event was its shard's last (the shard's
/// children wait for that save). The save completes before the next event is returned. When the
/// inner stream ends, the last acknowledged position is saved before the end is returned.
///
/// Over a [filtering](crate::ChangeStreamBuilder::filter) stream, once the last event it
/// yielded is acknowledged, the position past the events it dropped after that one is saved
/// too (as if acknowledged, when the stream waits for records or ends, and by
/// [`close`](Self::close)): a filtered-out tail does not hold saves back.
///
/// A failed save is returned as an `Err` item; the position stays unsaved and is tried
/// again at the next threshold and by [`close`](Self::close). A
/// [`Conflict`](crate::ErrorKind::Conflict) means another consumer owns the stream: stop.
///
/// Dropping a pending `next()` loses nothing: a save in flight carries on at the next poll.
///
/// ```no_run
/// use std::time::Duration;
/// use dynamodb_stream::{ChangeStream, Committer};
/// use dynamodb_stream::store::FileStore;
/// use futures::StreamExt;
///
/// # async fn process(_: &dynamodb_stream::ChangeEvent) {}
/// # async fn run(client: aws_sdk_dynamodbstreams::Client, arn: &str) -> dynamodb_stream::Result<()> {
/// let store = FileStore::new("orders.checkpoint");
/// let stream = ChangeStream::builder(client, arn).resume_from_store(&store).await?.build()?;
/// let mut events = Committer::new(stream, store)
///     .every(100)
///     .interval(Duration::from_secs(5));
/// let shutdown = tokio::signal::ctrl_c();
/// tokio::pin!(shutdown);
/// loop {
///     tokio::select! {
///         event = events.next() => {
///             let Some(event) = event else { break };
///             let event = event?;
///             process(&event).await;
///             events.ack(&event);
///         }
///         _ = &mut shutdown => break,
///     }
/// }
/// // Stops reading (pages in flight are dropped: nothing unacknowledged is marked done) and
/// // saves the last acknowledged position.
/// events.close().await?;
/// # Ok(()) }
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct Committer<S, C> {
    stream: Pin<Box<S>>,
    saver: Saver<C>,
    /// The inner stream ended and the final save was tried.
    done: bool,
}

/// Everything but the stream: what [`Committer::close`] keeps after dropping the stream.
struct Saver<C> {
    store: Arc<C>,
    every: u64,
    interval: Duration,
    /// The last acknowledged position not yet saved.
    pending: Option<Checkpoint>,
    /// Acknowledgements since the last save started.
    acks: u64,
    /// An acknowledged event was the last of its shard: save at the next poll.
    finishes: bool,
    /// When the oldest unsaved acknowledgement was made.
    since: Option<Instant>,
    in_flight: Option<(Checkpoint, SaveFuture)>,
    saved: Option<Checkpoint>,
    timer: Option<Pin<Box<Sleep>>>,
    /// Positions past events a filter dropped after the last acknowledged one.
    skips: SkipWatch,
}

impl<S, C, T> Committer<S, C>
where
    S: Stream<Item = Result<T>>,
    T: HasCheckpoint,
    C: CheckpointStore + 'static,
{
    /// Wraps `stream`, saving to `store`. Defaults: every 1000 acknowledgements or 5 seconds.
    ///
    /// To keep using the store elsewhere, pass an `Arc` of it (or a clone, for stores whose
    /// clones share state, like [`MemoryStore`](crate::store::MemoryStore)).
    pub fn new(stream: S, store: C) -> Self {
        Self {
            stream: Box::pin(stream),
            saver: Saver {
                store: Arc::new(store),
                every: 1000,
                interval: Duration::from_secs(5),
                pending: None,
                acks: 0,
                finishes: false,
                since: None,
                in_flight: None,
                saved: None,
                timer: None,
                skips: SkipWatch::default(),
            },
            done: false,
        }
    }

    /// Saves once this many events have been acknowledged since the last save; 0 turns the
    /// count off. Default is 1000.
    pub fn every(mut self, events: u64) -> Self {
        self.saver.every = events;
        self
    }

    /// Saves once the oldest unsaved acknowledgement is this old; zero turns the timer off.
    /// Default is 5 seconds.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.saver.interval = interval;
        self
    }

    /// Marks `event`, and every event before it, as processed: its checkpoint is saved at the
    /// next threshold. Cheap: no I/O.
    pub fn ack(&mut self, event: &T) {
        self.ack_checkpoint(event.checkpoint().clone());
    }

    /// [`ack`](Self::ack) by checkpoint, for code that keeps events and checkpoints apart
    /// ([`ChangeEvent::into_checkpoint`]).
    pub fn ack_checkpoint(&mut self, checkpoint: Checkpoint) {
        let saver = &mut self.saver;
        // A shard's last event: its children (read by this process or, through a lease
        // table, by another) wait for this save, so it is due at once.
        saver.finishes |= checkpoint.head_finished();
        saver.skips.acked(&checkpoint);
        saver.pending = Some(checkpoint);
        saver.acks = saver.acks.saturating_add(1);
        if saver.since.is_none() {
            saver.since = Some(Instant::now());
        }
    }

    /// The last checkpoint saved by this committer.
    pub fn saved(&self) -> Option<&Checkpoint> {
        self.saver.saved.as_ref()
    }

    /// The store.
    pub fn store(&self) -> &C {
        &self.saver.store
    }

    /// The wrapped stream, for example for [`ChangeStream::status`](crate::ChangeStream::status).
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// Saves the last acknowledged position now (after any save in flight) and returns the
    /// last saved checkpoint.
    ///
    /// # Errors
    /// The store's error; the position stays unsaved.
    pub async fn flush(&mut self) -> Result<Option<Checkpoint>> {
        self.saver.flush().await
    }

    /// Stops reading (the inner stream is dropped: pages in flight are discarded, which loses
    /// nothing, since only acknowledged positions are saved), saves the last acknowledged
    /// position, closes the store ([`CheckpointStore::close`]: a lease table hands its shards
    /// over), and returns the last saved checkpoint (`None` if nothing was ever saved).
    ///
    /// # Errors
    /// The store's error when the final save fails: the position of the last save before it
    /// stays in the store (and a lease table keeps its shards until their lease runs out).
    pub async fn close(self) -> Result<Option<Checkpoint>> {
        let Self {
            stream, mut saver, ..
        } = self;
        drop(stream);
        let saved = saver.flush().await?;
        saver.store.close().await?;
        Ok(saved)
    }
}

impl<C: CheckpointStore + 'static> Saver<C> {
    async fn flush(&mut self) -> Result<Option<Checkpoint>> {
        self.take_skips();
        let mut result = Ok(());
        if self.in_flight.is_some() {
            result = poll_fn(|cx| self.poll_save(cx)).await;
        }
        // Newer than the save in flight, or that save's position if it failed: one attempt.
        if self.pending.is_some() {
            self.start_save();
            result = poll_fn(|cx| self.poll_save(cx)).await;
        }
        result.map(|()| self.saved.clone())
    }

    /// Every event yielded was acknowledged, and the stream dropped events after them: their
    /// position is pending, as if acknowledged (saved at the next threshold).
    fn take_skips(&mut self) {
        if let Some(past) = self.skips.take() {
            self.pending = Some(past);
            self.since.get_or_insert_with(Instant::now);
        }
    }

    fn due(&self) -> bool {
        self.pending.is_some()
            && (self.finishes
                || (self.every > 0 && self.acks >= self.every)
                || self.deadline().is_some_and(|at| Instant::now() >= at))
    }

    fn deadline(&self) -> Option<Instant> {
        if self.interval.is_zero() {
            return None;
        }
        self.since
            .and_then(|since| since.checked_add(self.interval))
    }

    fn start_save(&mut self) {
        let Some(checkpoint) = self.pending.take() else {
            return;
        };
        self.acks = 0;
        self.finishes = false;
        self.since = None;
        let store = self.store.clone();
        let to_save = checkpoint.clone();
        let future: SaveFuture = Box::pin(async move { store.save(&to_save).await });
        self.in_flight = Some((checkpoint, future));
    }

    fn poll_save(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let Some((_, future)) = self.in_flight.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let result = std::task::ready!(future.as_mut().poll(cx));
        let Some((checkpoint, _)) = self.in_flight.take() else {
            return Poll::Ready(result);
        };
        match &result {
            Ok(()) => self.saved = Some(checkpoint),
            Err(_) => {
                // Keep the position (unless a newer one was acknowledged meanwhile) and try
                // again at the next threshold.
                if self.pending.is_none() {
                    self.pending = Some(checkpoint);
                }
                self.since.get_or_insert_with(Instant::now);
            }
        }
        Poll::Ready(result)
    }

    /// Whether the timer for the oldest unsaved acknowledgement has fired.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(deadline) = self.deadline().filter(|_| self.pending.is_some()) else {
            return false;
        };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        timer.as_mut().poll(cx).is_ready()
    }
}

impl<S, C, T> Stream for Committer<S, C>
where
    S: Stream<Item = Result<T>>,
    T: HasCheckpoint,
    C: CheckpointStore + 'static,
{
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Every field is Unpin: the inner stream is boxed.
        let this = self.get_mut();
        let saver = &mut this.saver;
        loop {
            if saver.in_flight.is_some()
                && let Err(e) = std::task::ready!(saver.poll_save(cx))
            {
                return Poll::Ready(Some(Err(e)));
            }
            if this.done {
                return Poll::Ready(None);
            }
            if saver.due() {
                saver.start_save();
                continue;
            }
            match this.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => return Poll::Ready(Some(item)),
                Poll::Ready(None) => {
                    this.done = true;
                    saver.take_skips();
                    saver.start_save();
                }
                Poll::Pending => {
                    saver.take_skips();
                    if saver.poll_timer(cx) {
                        saver.start_save();
                        continue;
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl<S, C, T> FusedStream for Committer<S, C>
where
    S: Stream<Item = Result<T>>,
    T: HasCheckpoint,
    C: CheckpointStore + 'static,
{
    fn is_terminated(&self) -> bool {
        self.done && self.saver.in_flight.is_none()
    }
}

impl<S, C: fmt::Debug> fmt::Debug for Committer<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let saver = &self.saver;
        f.debug_struct("Committer")
            .field("store", &saver.store)
            .field("every", &saver.every)
            .field("interval", &saver.interval)
            .field("pending", &saver.pending.is_some())
            .field("saving", &saver.in_flight.is_some())
            .field("saved", &saver.saved)
            .finish_non_exhaustive()
    }
}
