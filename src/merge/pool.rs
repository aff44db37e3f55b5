//! The shard readers being polled, the pages they read ahead, and the order pages go out in.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use futures::stream::{AbortHandle, FuturesUnordered, StreamExt as _, StreamFuture, abortable};

use crate::api::Context;
use crate::checkpoint::resume::ShardStart;
use crate::config::Readers;
use crate::error::Error;
use crate::shard::{Page, PageEnd, ShardReader, on_task, read_shard};

/// Ready shards are read concurrently; each may run at most `read_ahead` pages ahead of the
/// consumer, and pages are handed out in the order they arrive, so no shard starves and no
/// live shard waits on an idle one.
pub(super) struct Pool {
    readers: FuturesUnordered<StreamFuture<ShardReader>>,
    parked: HashMap<Arc<str>, ShardReader>,
    buffered: HashMap<Arc<str>, usize>,
    ready: VecDeque<Page>,
    /// Readers that may be stopped before their end (leased shards).
    aborts: HashMap<Arc<str>, AbortHandle>,
    /// The runtime that readers are spawned on, once decided (`None`: read inline).
    runtime: Option<Option<tokio::runtime::Handle>>,
}

/// What the readers produced in one poll.
pub(super) enum Polled {
    /// Some readers are still reading (or nothing was ready).
    Pending,
    /// A reader failed: the error ends the stream.
    Failed(Error),
    /// The last readers ended just now without a page (caught up).
    Drained,
}

impl Pool {
    pub(super) fn new() -> Self {
        Self {
            readers: FuturesUnordered::new(),
            parked: HashMap::new(),
            buffered: HashMap::new(),
            ready: VecDeque::new(),
            aborts: HashMap::new(),
            runtime: None,
        }
    }

    /// Starts reading `shard` from `start` (`closed`: listed with its end known);
    /// `stoppable` readers can be [`stop`](Self::stop)ped.
    pub(super) fn start(
        &mut self,
        ctx: &Arc<Context>,
        shard: Arc<str>,
        start: ShardStart,
        closed: bool,
        stoppable: bool,
    ) {
        let mut reader = read_shard(ctx.clone(), shard.clone(), start, closed);
        if let Some(runtime) = self.spawn_on(ctx.options.readers) {
            reader = on_task(reader, runtime);
        }
        if stoppable {
            let (reader_, handle) = abortable(reader);
            reader = Box::pin(reader_);
            self.aborts.insert(shard, handle);
        }
        self.readers.push(reader.into_future());
    }

    /// Stops reading `shard` and drops the pages read ahead of it.
    #[cfg(feature = "dynamodb-store")]
    pub(super) fn stop(&mut self, shard: &str) {
        if let Some(handle) = self.aborts.remove(shard) {
            handle.abort();
        }
        self.parked.remove(shard);
        self.buffered.remove(shard);
        self.ready.retain(|page| &*page.shard != shard);
    }

    /// The runtime to run readers on, decided when the first shard starts (while polled).
    fn spawn_on(&mut self, readers: Readers) -> Option<&tokio::runtime::Handle> {
        self.runtime
            .get_or_insert_with(|| {
                let runtime = tokio::runtime::Handle::try_current().ok()?;
                let spawn = match readers {
                    Readers::Spawned => true,
                    Readers::Inline => false,
                    _ => runtime.runtime_flavor() != tokio::runtime::RuntimeFlavor::CurrentThread,
                };
                spawn.then_some(runtime)
            })
            .as_ref()
    }

    /// Polls every reader that may read on. `caught_up` is called for each shard read to its
    /// current end (catch-up mode).
    pub(super) fn poll(
        &mut self,
        cx: &mut TaskContext<'_>,
        read_ahead: usize,
        mut caught_up: impl FnMut(&Arc<str>),
    ) -> Polled {
        let had_readers = !self.readers.is_empty();
        while let Poll::Ready(Some((item, reader))) = self.readers.poll_next_unpin(cx) {
            match item {
                Some(Ok(page)) if page.end == PageEnd::CaughtUp => caught_up(&page.shard),
                Some(Ok(page)) => self.on_page(page, reader, read_ahead),
                Some(Err(e)) => return Polled::Failed(e),
                None => {}
            }
        }
        if had_readers && self.is_idle() {
            Polled::Drained
        } else {
            Polled::Pending
        }
    }

    fn on_page(&mut self, page: Page, reader: ShardReader, read_ahead: usize) {
        if page.end == PageEnd::Idle {
            // It only says the shard had nothing new: it takes no read-ahead, and the reader
            // goes on polling as it would without it.
            self.readers.push(reader.into_future());
            self.ready.push_back(page);
            return;
        }
        if page.end == PageEnd::More {
            let n = self.buffered.get(&page.shard).copied().unwrap_or(0) + 1;
            if n < read_ahead {
                self.readers.push(reader.into_future());
            } else {
                self.parked.insert(page.shard.clone(), reader);
            }
        } else {
            self.aborts.remove(&page.shard);
        }
        *self.buffered.entry(page.shard.clone()).or_insert(0) += 1;
        self.ready.push_back(page);
    }

    /// The next page to deliver; its shard's reader may read on.
    pub(super) fn take_page(&mut self) -> Option<Page> {
        let page = self.ready.pop_front()?;
        if page.end == PageEnd::Idle {
            return Some(page);
        }
        if let Some(n) = self.buffered.get_mut(&page.shard) {
            *n -= 1;
            if *n == 0 {
                self.buffered.remove(&page.shard);
            }
        }
        if let Some(reader) = self.parked.remove(&page.shard) {
            self.readers.push(reader.into_future());
        }
        Some(page)
    }

    /// No reader is reading or parked.
    pub(super) fn is_idle(&self) -> bool {
        self.readers.is_empty() && self.parked.is_empty()
    }

    /// No page is waiting to be delivered.
    pub(super) fn is_empty(&self) -> bool {
        self.ready.is_empty()
    }

    /// Records in the pages read and waiting to be delivered.
    pub(super) fn records_waiting(&self) -> usize {
        self.ready.iter().map(|page| page.changes.len()).sum()
    }
}
