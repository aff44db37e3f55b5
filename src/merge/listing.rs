//! When the merge lists shards: the first full listing, one every minute, and the children
//! of finished shards (a `CHILD_SHARDS` look-up for one parent, a full listing for several),
//! retried with back-off while none are listed.

use std::collections::HashMap;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, ready};
use std::time::Duration;

use futures::FutureExt as _;
use futures::future::BoxFuture;
use tokio::time::{Instant, Sleep};

use crate::api::{Context, MAX_LIST_PAGES};
use crate::error::{Error, ErrorKind, Result};
use crate::lineage::{Lineage, ShardInfo};

/// How often the whole shard list is read again, to catch anything a targeted look-up missed.
const FULL_LISTING_EVERY: Duration = Duration::from_secs(60);
/// First delay before asking again for the children of a finished shard that has none listed.
const CHILDREN_RETRY_MIN: Duration = Duration::from_millis(250);
const CHILDREN_RETRY_MAX: Duration = Duration::from_secs(5);

/// What a listing found.
pub(super) enum Discovered {
    /// Every shard of the stream; `first` for the consumer's first listing.
    Full { shards: Vec<ShardInfo>, first: bool },
    /// One page of the first listing, with more to come: what it lists, ahead of the rest
    /// (the last page comes as the whole `Full` listing).
    Page(Vec<ShardInfo>),
    /// The children of one shard.
    Children(Arc<str>, Vec<ShardInfo>),
}

/// A page of the first listing as the call returns it: its shards, the shard it started
/// after, and the shard the next page starts after.
struct FirstPage {
    shards: Vec<ShardInfo>,
    start: Option<String>,
    last: Option<String>,
}

pub(super) struct Listing {
    ctx: Arc<Context>,
    pending: Option<BoxFuture<'static, Result<Discovered>>>,
    /// The first listing, read one page at a time so that its shards can start early.
    first_page: Option<BoxFuture<'static, Result<FirstPage>>>,
    /// The first listing's pages so far.
    first_shards: Vec<ShardInfo>,
    first_pages: usize,
    timer: Pin<Box<Sleep>>,
    next_full: Instant,
    next_children: Instant,
    listed_once: bool,
    /// Finished shards with no children listed yet, and how often they were asked for.
    awaiting: HashMap<Arc<str>, u32>,
}

impl Listing {
    pub(super) fn new(ctx: Arc<Context>) -> Self {
        let now = Instant::now();
        Self {
            ctx,
            pending: None,
            first_page: None,
            first_shards: Vec::new(),
            first_pages: 0,
            timer: Box::pin(tokio::time::sleep_until(now)),
            next_full: now,
            next_children: now,
            listed_once: false,
            awaiting: HashMap::new(),
        }
    }

    /// A shard finished before any of its children was listed: look for them now, and again
    /// with back-off (children are listed some time after their parent closes).
    pub(super) fn await_children(&mut self, shard: Arc<str>) {
        self.awaiting.insert(shard, 0);
        self.next_children = Instant::now();
    }

    /// Stops looking for the children of shards that have some now.
    pub(super) fn children_found(&mut self, lineage: &Lineage) {
        self.awaiting
            .retain(|parent, _| !lineage.has_children(parent));
    }

    /// Nothing listed, or to be listed: what catch-up mode waits for before it ends.
    pub(super) fn is_idle(&self) -> bool {
        self.listed_once && self.pending.is_none() && self.awaiting.is_empty()
    }

    /// Reads the first listing one page at a time: each page but the last as a
    /// [`Discovered::Page`], then the whole listing as [`Discovered::Full`].
    fn poll_first(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<Discovered>> {
        let pending = self
            .first_page
            .get_or_insert_with(|| first_page(self.ctx.clone(), None));
        let page = ready!(pending.poll_unpin(cx));
        self.first_page = None;
        let FirstPage {
            shards,
            start,
            last,
        } = page?;
        self.first_pages += 1;
        self.first_shards.extend(shards.iter().cloned());
        match last {
            // A server that hands back the page start it was given would loop forever.
            Some(last) if Some(&last) != start.as_ref() => {
                if self.first_pages >= MAX_LIST_PAGES {
                    return Poll::Ready(Err(Error::new(
                        ErrorKind::InvalidRequest,
                        format!("DescribeStream kept paginating past {MAX_LIST_PAGES} pages"),
                    )));
                }
                self.first_page = Some(first_page(self.ctx.clone(), Some(last)));
                Poll::Ready(Ok(Discovered::Page(shards)))
            }
            _ => {
                self.listed_once = true;
                self.next_full = Instant::now() + FULL_LISTING_EVERY;
                Poll::Ready(Ok(Discovered::Full {
                    shards: std::mem::take(&mut self.first_shards),
                    first: true,
                }))
            }
        }
    }

    /// A look-up for children is due but was held back while readers were busy.
    pub(super) fn is_deferred(&self) -> bool {
        self.listed_once && self.pending.is_none() && !self.awaiting.is_empty()
    }

    /// Starts the listing that is due, if any, and returns its result once it has one.
    /// `readers_busy`: catch-up mode with shards still being read.
    pub(super) fn poll(
        &mut self,
        cx: &mut TaskContext<'_>,
        readers_busy: bool,
    ) -> Poll<Result<Discovered>> {
        if !self.listed_once {
            return self.poll_first(cx);
        }
        self.schedule(Instant::now(), readers_busy);
        let Some(pending) = self.pending.as_mut() else {
            // Registers the waker for the next scheduled listing.
            let _ = self.timer.as_mut().poll(cx);
            return Poll::Pending;
        };
        let result = ready!(pending.poll_unpin(cx));
        self.pending = None;
        if self.ctx.options.catch_up {
            // Catch-up: a parent whose children were looked for and not found is read to its
            // current end; its children, once listed, are not.
            self.awaiting.retain(|_, tries| *tries == 0);
        }
        Poll::Ready(result)
    }

    /// Starts the next shard listing if one is due; otherwise arms the timer for it.
    fn schedule(&mut self, now: Instant, readers_busy: bool) {
        if self.pending.is_some() {
            return;
        }
        let catch_up = self.ctx.options.catch_up;
        if !catch_up && now >= self.next_full {
            self.next_full = now + FULL_LISTING_EVERY;
            self.pending = Some(self.full(false));
            return;
        }
        // Catch-up: the run cannot end while readers are busy, and children found meanwhile
        // need not be read earlier, so the look-up waits until every reader is done: then one
        // listing settles every finished shard, instead of a look-up (and a pacing wait) for
        // each as it finishes. The merge comes back here as soon as the last reader ends.
        if now >= self.next_children && !self.awaiting.is_empty() && !readers_busy {
            self.pending = Some(self.children(now));
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

    fn full(&self, first: bool) -> BoxFuture<'static, Result<Discovered>> {
        let ctx = self.ctx.clone();
        async move {
            let shards = ctx.list_all().await?;
            Ok(Discovered::Full { shards, first })
        }
        .boxed()
    }

    /// One parent waiting: ask for its children (`CHILD_SHARDS`); several, or every third
    /// round: one full listing answers for all of them at once.
    fn children(&mut self, now: Instant) -> BoxFuture<'static, Result<Discovered>> {
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
        let Some(parent) = single else {
            return self.full(false);
        };
        let ctx = self.ctx.clone();
        async move {
            let children = ctx.list_children(&parent).await?;
            Ok(Discovered::Children(parent, children))
        }
        .boxed()
    }
}

/// One page of the first listing, after shard `start`.
fn first_page(ctx: Arc<Context>, start: Option<String>) -> BoxFuture<'static, Result<FirstPage>> {
    async move {
        let (shards, last) = ctx.list_page(start.clone()).await?;
        Ok(FirstPage {
            shards,
            start,
            last,
        })
    }
    .boxed()
}
