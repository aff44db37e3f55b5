//! The lineage-ordered merge of shard readers.
//!
//! Ready shards are read concurrently; each may run at most `read_ahead` pages ahead of the
//! consumer, so a slow consumer applies backpressure and memory stays bounded. Pages are handed
//! out in the order they arrive, so no shard starves and no live shard waits on an idle one.
//! A shard's children start only once the consumer has asked for the next page after the
//! parent's final page: that is, after every record of the parent was delivered.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt, StreamFuture};
use futures::{FutureExt, Stream};
use tokio::time::{Instant, Sleep};

use crate::checkpoint::ShardPosition;
use crate::discovery::{list_all, list_children};
use crate::error::{Error, ErrorKind, Result};
use crate::event::Gap;
use crate::lineage::{Lineage, ShardInfo, ShardState};
use crate::shard::{Context, Page, PageEnd, ShardReader, ShardStart, on_task, read_shard};
use crate::stream::Readers;

/// How often the whole shard list is read again, to catch anything a targeted look-up missed.
const FULL_LISTING_EVERY: Duration = Duration::from_secs(60);
/// First delay before asking again for the children of a finished shard that has none listed.
const CHILDREN_RETRY_MIN: Duration = Duration::from_millis(250);
const CHILDREN_RETRY_MAX: Duration = Duration::from_secs(5);

/// Where shards start, decided once from the builder's start position or checkpoint.
#[derive(Debug)]
pub(crate) struct StartPolicy {
    /// Shard positions from the checkpoint being resumed (empty for a fresh start).
    pub(crate) resumed: imbl::HashMap<Arc<str>, ShardPosition>,
    /// Fresh start at `LATEST`: the start instant, whole epoch seconds. The shards open at
    /// the first listing then take `LATEST` iterators.
    pub(crate) latest_since: Option<i64>,
    /// Shards without a resumed position are read from the trim horizon, skipping records
    /// created before this instant (a `LATEST` start, fresh or resumed).
    pub(crate) unlisted_since: Option<i64>,
}

/// What the merge hands the consumer.
#[derive(Debug)]
pub(crate) enum Update {
    Page(Page),
    /// Positions to record without delivering records: `None` forgets a shard.
    Positions(Vec<(Arc<str>, Option<ShardPosition>)>),
    /// Records lost to retention that no page will report (the whole shard aged out).
    Gap(Gap),
}

enum Discovered {
    Full(Vec<ShardInfo>),
    Children(Arc<str>, Vec<ShardInfo>),
}

pub(crate) struct Merge {
    ctx: Arc<Context>,
    policy: StartPolicy,
    lineage: Lineage,
    readers: FuturesUnordered<StreamFuture<ShardReader>>,
    parked: HashMap<Arc<str>, ShardReader>,
    buffered: HashMap<Arc<str>, usize>,
    read_ahead: usize,
    ready: VecDeque<Page>,
    updates: VecDeque<Update>,
    /// The shard whose final page was handed out last: finished on the next poll.
    delivered_end: Option<Arc<str>>,
    /// The shards open when a fresh `LATEST` start listed them.
    initial_open: HashSet<Arc<str>>,
    /// Finished shards with no children listed yet, and how often they were asked for.
    awaiting: HashMap<Arc<str>, u32>,
    discovery: Option<BoxFuture<'static, Result<Discovered>>>,
    timer: Pin<Box<Sleep>>,
    next_full: Instant,
    next_children: Instant,
    listed_once: bool,
    /// The runtime that readers are spawned on, once decided (`None`: read inline).
    runtime: Option<Option<tokio::runtime::Handle>>,
    done: bool,
}

impl Merge {
    pub(crate) fn new(ctx: Arc<Context>, policy: StartPolicy, read_ahead: usize) -> Self {
        let now = Instant::now();
        Self {
            ctx,
            policy,
            lineage: Lineage::default(),
            readers: FuturesUnordered::new(),
            parked: HashMap::new(),
            buffered: HashMap::new(),
            read_ahead: read_ahead.max(1),
            ready: VecDeque::new(),
            updates: VecDeque::new(),
            delivered_end: None,
            initial_open: HashSet::new(),
            awaiting: HashMap::new(),
            discovery: None,
            timer: Box::pin(tokio::time::sleep_until(now)),
            next_full: now,
            next_children: now,
            listed_once: false,
            runtime: None,
            done: false,
        }
    }

    /// The parent of a known shard, if it has one listed.
    pub(crate) fn parent(&self, id: &str) -> Option<Arc<str>> {
        self.lineage.parent(id)
    }

    /// Every known shard and its state.
    pub(crate) fn states(&self) -> Vec<(Arc<str>, ShardState)> {
        self.lineage.states()
    }

    fn start(&mut self, ready: Vec<Arc<str>>) {
        for id in ready {
            let start = match self.policy.resumed.get(&id) {
                Some(ShardPosition::After(seq)) => ShardStart::After(seq.clone()),
                Some(ShardPosition::LatestSince(t)) => {
                    ShardStart::Since(crate::stream::epoch_secs(*t))
                }
                _ => match (self.policy.latest_since, self.policy.unlisted_since) {
                    (Some(since), _) if self.initial_open.contains(&id) => {
                        ShardStart::Latest { since }
                    }
                    (_, Some(since)) => ShardStart::Since(since),
                    _ => ShardStart::TrimHorizon,
                },
            };
            let mut reader = read_shard(self.ctx.clone(), id, start);
            if let Some(runtime) = self.spawn_on() {
                reader = on_task(reader, runtime);
            }
            self.readers.push(reader.into_future());
        }
    }

    /// The runtime to run readers on, decided when the first shard starts (while polled).
    fn spawn_on(&mut self) -> Option<&tokio::runtime::Handle> {
        let readers = self.ctx.readers;
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

    fn on_listing(&mut self, shards: Vec<ShardInfo>, full: bool) -> Result<()> {
        let first = !self.listed_once && full;
        if first {
            self.listed_once = true;
            self.on_first_listing(&shards)?;
        }
        let resumed = &self.policy.resumed;
        let ready = self.lineage.observe(&shards, |s| {
            matches!(resumed.get(&s.id), Some(ShardPosition::Finished))
        });
        if !ready.is_empty() {
            tracing::info!(shards = ready.len(), "shards ready");
        }
        self.start(ready);
        self.awaiting
            .retain(|parent, _| !self.lineage.has_children(parent));
        if full && !first {
            let listed: HashSet<Arc<str>> = shards.iter().map(|s| s.id.clone()).collect();
            let gone = self.lineage.prune(&listed);
            if !gone.is_empty() {
                tracing::debug!(
                    shards = gone.len(),
                    "finished shards aged out of the stream"
                );
                self.updates.push_back(Update::Positions(
                    gone.into_iter().map(|id| (id, None)).collect(),
                ));
            }
        }
        Ok(())
    }

    /// Reconciles the start policy with what the stream holds now.
    fn on_first_listing(&mut self, shards: &[ShardInfo]) -> Result<()> {
        let listed: HashMap<&Arc<str>, &ShardInfo> = shards.iter().map(|s| (&s.id, s)).collect();
        let mut updates = Vec::new();
        // Checkpointed shards that aged out: finished ones are forgotten; unfinished ones had
        // records that are gone now.
        for (id, pos) in self.policy.resumed.iter() {
            if listed.contains_key(id) {
                continue;
            }
            match pos {
                ShardPosition::Finished => updates.push((id.clone(), None)),
                lost if self.ctx.skip_trimmed => {
                    tracing::warn!(shard = %id, "the checkpoint's shard aged out of the stream unread");
                    updates.push((id.clone(), None));
                    self.updates.push_back(Update::Gap(Gap {
                        shard_id: id.to_string(),
                        after: match lost {
                            ShardPosition::After(seq) => Some(seq.clone()),
                            _ => None,
                        },
                    }));
                }
                ShardPosition::After(seq) => {
                    return Err(Error::new(
                        ErrorKind::TrimmedData,
                        format!(
                            "the checkpoint's shard is no longer in the stream: records after {seq} aged out unread"
                        ),
                    )
                    .with_shard(id.to_string())
                    .with_sequence_number(Some(seq.clone())));
                }
                ShardPosition::LatestSince(_) => {
                    return Err(Error::new(
                        ErrorKind::TrimmedData,
                        "the checkpoint's shard is no longer in the stream: its records aged out unread",
                    )
                    .with_shard(id.to_string()));
                }
            }
        }
        // A checkpoint leaves out finished shards once a descendant has a position (a child
        // only starts after its parent is finished): they are finished.
        let mut implied = Vec::new();
        for id in self.policy.resumed.keys() {
            let mut parent = listed.get(id).and_then(|s| s.parent.as_ref());
            while let Some(p) = parent.filter(|p| !self.policy.resumed.contains_key(*p)) {
                implied.push(p.clone());
                parent = listed.get(p).and_then(|s| s.parent.as_ref());
            }
        }
        for id in implied {
            self.policy.resumed.insert(id, ShardPosition::Finished);
        }
        if self.policy.latest_since.is_some() {
            // A closed shard with a closed child needs no entry: the child's implies it.
            let closed_parents: HashSet<&Arc<str>> = shards
                .iter()
                .filter(|s| s.closed)
                .filter_map(|s| s.parent.as_ref())
                .collect();
            for shard in shards {
                if shard.closed {
                    // Closed before the start: nothing new will ever arrive in it.
                    self.policy
                        .resumed
                        .insert(shard.id.clone(), ShardPosition::Finished);
                    if !closed_parents.contains(&shard.id) {
                        updates.push((shard.id.clone(), Some(ShardPosition::Finished)));
                    }
                } else {
                    self.initial_open.insert(shard.id.clone());
                }
            }
        }
        if !updates.is_empty() {
            self.updates.push_back(Update::Positions(updates));
        }
        Ok(())
    }

    fn on_finished(&mut self, shard: Arc<str>) {
        let ready = self.lineage.finish(&shard);
        if self.lineage.has_children(&shard) {
            self.start(ready);
        } else {
            // Children are listed some time after their parent closes.
            self.awaiting.insert(shard, 0);
            self.next_children = Instant::now();
        }
    }

    fn on_page(&mut self, page: Page, reader: ShardReader) {
        match page.end {
            PageEnd::CaughtUp => {
                self.lineage.caught_up(&page.shard);
                return;
            }
            PageEnd::ShardEnd => {}
            PageEnd::More => {
                let n = self.buffered.get(&page.shard).copied().unwrap_or(0) + 1;
                if n < self.read_ahead {
                    self.readers.push(reader.into_future());
                } else {
                    self.parked.insert(page.shard.clone(), reader);
                }
            }
        }
        *self.buffered.entry(page.shard.clone()).or_insert(0) += 1;
        self.ready.push_back(page);
    }

    fn take_page(&mut self) -> Option<Page> {
        let page = self.ready.pop_front()?;
        if let Some(n) = self.buffered.get_mut(&page.shard) {
            *n -= 1;
            if *n == 0 {
                self.buffered.remove(&page.shard);
            }
        }
        if let Some(reader) = self.parked.remove(&page.shard) {
            self.readers.push(reader.into_future());
        }
        if page.end == PageEnd::ShardEnd {
            self.delivered_end = Some(page.shard.clone());
        }
        Some(page)
    }

    /// Starts the next shard listing if one is due; otherwise arms the timer for it.
    fn schedule_discovery(&mut self, now: Instant) {
        if self.discovery.is_some() {
            return;
        }
        let catch_up = self.ctx.catch_up.is_some();
        if !self.listed_once || (!catch_up && now >= self.next_full) {
            self.next_full = now + FULL_LISTING_EVERY;
            let ctx = self.ctx.clone();
            self.discovery =
                Some(async move { list_all(&ctx).await.map(Discovered::Full) }.boxed());
            return;
        }
        // Catch-up: the run cannot end while readers are busy, and children found meanwhile
        // need not be read earlier, so the look-up waits until every reader is done: then one
        // listing settles every finished shard, instead of a look-up (and a pacing wait) for
        // each as it finishes. `poll_step` comes back here as soon as the last reader ends.
        let readers_busy = catch_up && !(self.readers.is_empty() && self.parked.is_empty());
        if now >= self.next_children && !self.awaiting.is_empty() && !readers_busy {
            // One parent waiting: ask for its children (CHILD_SHARDS); several, or every third
            // round: one full listing answers for all of them at once.
            let round = self.awaiting.values().copied().min().unwrap_or(0);
            let single = match (self.awaiting.len(), round % 3) {
                (1, 0 | 1) => self.awaiting.keys().next().cloned(),
                _ => None,
            };
            for tries in self.awaiting.values_mut() {
                *tries += 1;
            }
            let delay = CHILDREN_RETRY_MIN
                .saturating_mul(1 << round.min(8))
                .min(CHILDREN_RETRY_MAX);
            self.next_children = now + delay;
            let ctx = self.ctx.clone();
            self.discovery = Some(match single {
                Some(parent) => async move {
                    let children = list_children(&ctx, &parent).await?;
                    Ok(Discovered::Children(parent, children))
                }
                .boxed(),
                None => async move { list_all(&ctx).await.map(Discovered::Full) }.boxed(),
            });
            return;
        }
        let mut deadline = self.next_full;
        if !self.awaiting.is_empty() {
            deadline = deadline.min(self.next_children);
        }
        if catch_up && (self.awaiting.is_empty() || readers_busy) {
            return;
        }
        self.timer.as_mut().reset(deadline);
    }

    fn is_idle(&self) -> bool {
        self.listed_once
            && self.discovery.is_none()
            && self.readers.is_empty()
            && self.parked.is_empty()
            && self.ready.is_empty()
            && self.awaiting.is_empty()
            && self.delivered_end.is_none()
    }
}

impl Stream for Merge {
    type Item = Result<Update>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match this.poll_step(cx) {
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            other => other,
        }
    }
}

impl Merge {
    fn poll_step(&mut self, cx: &mut TaskContext<'_>) -> Poll<Option<Result<Update>>> {
        if let Some(shard) = self.delivered_end.take() {
            self.on_finished(shard);
        }
        loop {
            self.poll_discovery(cx)?;
            let had_readers = !self.readers.is_empty();
            while let Poll::Ready(Some((item, reader))) = self.readers.poll_next_unpin(cx) {
                match item {
                    Some(Ok(page)) => self.on_page(page, reader),
                    Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                    None => {}
                }
            }
            if let Some(update) = self.updates.pop_front() {
                return Poll::Ready(Some(Ok(update)));
            }
            if let Some(page) = self.take_page() {
                return Poll::Ready(Some(Ok(Update::Page(page))));
            }
            if self.ctx.catch_up.is_some() && self.is_idle() {
                return Poll::Ready(None);
            }
            // The last readers just ended without a page (caught up): a look-up held back
            // while they were busy can start now.
            let deferred = self.discovery.is_none() && !self.awaiting.is_empty();
            if had_readers && self.readers.is_empty() && self.parked.is_empty() && deferred {
                continue;
            }
            return Poll::Pending;
        }
    }

    /// Starts due listings and takes in their results, until one is pending or none is due.
    fn poll_discovery(&mut self, cx: &mut TaskContext<'_>) -> Result<()> {
        loop {
            self.schedule_discovery(Instant::now());
            let Some(discovery) = self.discovery.as_mut() else {
                break;
            };
            let Poll::Ready(result) = discovery.poll_unpin(cx) else {
                break;
            };
            self.discovery = None;
            match result? {
                Discovered::Full(shards) => self.on_listing(shards, true)?,
                Discovered::Children(parent, children) => {
                    tracing::debug!(parent = %parent, children = children.len(), "child shards listed");
                    self.on_listing(children, false)?;
                }
            }
            if self.ctx.catch_up.is_some() {
                // Catch-up: a parent whose children were looked for and not found is read to
                // its current end; its children, once listed, are not.
                self.awaiting.retain(|_, tries| *tries == 0);
            }
        }
        if self.discovery.is_none() {
            // Registers the waker for the next scheduled listing.
            let _ = self.timer.as_mut().poll(cx);
        }
        Ok(())
    }
}
