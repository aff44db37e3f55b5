//! [`ChangeStream`]: the public stream. It hands out a page's records one event at a time,
//! each with its checkpoint, and records delivered pages in the merge's positions.

use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use futures::Stream;
use futures::stream::FusedStream;
use pin_project::pin_project;

use crate::api::Context as Api;
use crate::budget::{Budget, Reservation};
use crate::checkpoint::{Checkpoint, ShardPosition, Snapshot};
use crate::error::Result;
use crate::event::{Change, ChangeEvent};
use crate::filter::{Filter, Filtering};
use crate::merge::{Merge, Update};
use crate::shard::{Page, PageEnd};
use crate::status::{Delivered, Gap, MemoryUse, PageCounters, Status};
use crate::telemetry::StreamMetrics;

/// A DynamoDB stream as one ordered [`Stream`] of [`ChangeEvent`]s.
///
/// Built with [`ChangeStream::builder`]. See the [crate documentation](crate) for the ordering
/// and checkpoint guarantees.
///
/// # Cancel safety
/// Dropping a pending `next()` loses nothing: records are only taken out of the stream when an
/// event is returned.
#[must_use = "streams do nothing unless polled"]
#[pin_project(project = StreamProj)]
pub struct ChangeStream {
    #[pin]
    merge: Merge,
    page: Option<CurrentPage>,
    delivered: HashMap<Arc<str>, Delivered>,
    gaps: Vec<Gap>,
    stream_arn: Arc<str>,
    pages: Arc<PageCounters>,
    filtering: Option<Filtering>,
    budget: Arc<Budget>,
    /// What the `metrics` feature exports.
    metrics: StreamMetrics,
    done: bool,
}

/// The page whose events are being handed out.
struct CurrentPage {
    /// Reported on the page's first event, then cleared.
    gap: Option<Arc<Gap>>,
    shard: Arc<str>,
    changes: std::vec::IntoIter<Change>,
    end: PageEnd,
    /// The positions of every shard as the page began.
    base: Arc<Snapshot>,
    /// The position of this shard after the last record taken from the page: returned, or
    /// dropped by the filter.
    head: Option<ShardPosition>,
    /// The position of the last event returned from the page.
    returned: Option<ShardPosition>,
    /// The filter dropped records after the last event returned from the page.
    dropped: bool,
    /// This page's delivery counters, added to the shard's once the page is done (not on
    /// every event: that would hash the shard id per event).
    delivered: Delivered,
    /// The lease the page was read under, for a leased stream.
    #[cfg(feature = "dynamodb-store")]
    lease: Option<Arc<crate::lease::Grant>>,
    /// The page's share of the memory budget: given back once the page is done.
    _reservation: Reservation,
}

impl ChangeStream {
    pub(crate) fn new(merge: Merge, ctx: &Api, filter: Option<Filter>) -> Self {
        Self {
            merge,
            page: None,
            delivered: HashMap::new(),
            gaps: Vec::new(),
            metrics: StreamMetrics::new(&ctx.stream_arn),
            stream_arn: ctx.stream_arn.clone(),
            pages: ctx.pages.clone(),
            budget: ctx.budget.clone(),
            filtering: filter.map(Filtering::new),
            done: false,
        }
    }

    /// The ARN of the stream being read.
    pub fn stream_arn(&self) -> &str {
        &self.stream_arn
    }

    /// The position after the last event returned (or the start, before any), and after the
    /// events the [filter](crate::ChangeStreamBuilder::filter) dropped since: save it at
    /// shutdown to resume exactly there.
    pub fn checkpoint(&mut self) -> Checkpoint {
        match &self.page {
            Some(CurrentPage {
                shard,
                base,
                head: Some(position),
                ..
            }) => Checkpoint::new(base.clone(), shard.clone(), position.clone()),
            _ => self.merge.checkpoint(),
        }
    }

    /// A snapshot of every known shard: its state, records delivered, last sequence number and
    /// how old its last delivered record is; and how pages were decoded. Cheap: no I/O.
    pub fn status(&self) -> Status {
        let page = self.page.as_ref();
        status_of(
            &self.merge,
            &self.delivered,
            page,
            &self.gaps,
            &self.pages,
            &self.budget,
        )
    }
}

/// [`ChangeStream::status`], from the stream's parts.
fn status_of(
    merge: &Merge,
    delivered: &HashMap<Arc<str>, Delivered>,
    page: Option<&CurrentPage>,
    gaps: &[Gap],
    pages: &PageCounters,
    budget: &Budget,
) -> Status {
    let now = SystemTime::now();
    let shards = merge
        .states()
        .into_iter()
        .map(|(id, state)| {
            let mut counts = delivered.get(&id).cloned().unwrap_or_default();
            if let Some(page) = page.filter(|p| p.shard == id) {
                counts.add(&page.delivered);
            }
            counts.status(&id, state, now)
        })
        .collect();
    Status {
        shards,
        gaps: gaps.to_vec(),
        lease: lease_status(merge),
        pages: pages.snapshot(),
        memory: MemoryUse {
            budget: budget.limit(),
            reserved: budget.reserved(),
        },
    }
}

#[cfg(feature = "dynamodb-store")]
fn lease_status(merge: &Merge) -> Option<crate::status::LeaseStatus> {
    merge.lessee().and_then(|l| l.table.status())
}

#[cfg(not(feature = "dynamodb-store"))]
fn lease_status(_merge: &Merge) -> Option<crate::status::LeaseStatus> {
    None
}

/// Sets the metrics' gauges from the stream's status: at most once a second, unless `force`d.
fn refresh_metrics(this: &mut StreamProj<'_>, force: bool) {
    let (merge, page) = (&*this.merge, this.page.as_ref());
    let (delivered, gaps, pages) = (&*this.delivered, &*this.gaps, &**this.pages);
    let budget = &**this.budget;
    this.metrics.refresh(force, || {
        let status = status_of(merge, delivered, page, gaps, pages, budget);
        (status, merge.read_ahead())
    });
}

impl fmt::Debug for ChangeStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeStream")
            .field("stream_arn", &self.stream_arn)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Stream for ChangeStream {
    type Item = Result<ChangeEvent>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        loop {
            #[cfg(feature = "dynamodb-store")]
            if let Err(e) = std::task::ready!(leased::may_deliver(this.page, &this.merge, cx)) {
                *this.done = true;
                return Poll::Ready(Some(Err(e)));
            }
            if this.page.is_some() {
                // The merge boxes its readers and futures: it is `Unpin`.
                let merge = Pin::get_mut(this.merge.as_mut());
                if let Err(e) = merge.poll_first_listing(cx) {
                    *this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
            }
            if let Some(event) = next_event(this.page, this.filtering) {
                return Poll::Ready(Some(Ok(event)));
            }
            if let Some(page) = this.page.take() {
                finish_page(&mut this, page);
            }
            refresh_metrics(&mut this, false);
            let update = match this.merge.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(update))) => update,
                Poll::Ready(Some(Err(e))) => {
                    *this.done = true;
                    refresh_metrics(&mut this, true);
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    *this.done = true;
                    refresh_metrics(&mut this, true);
                    return Poll::Ready(None);
                }
            };
            take_update(&mut this, update);
        }
    }
}

/// The page's events are all handed out: its positions go to the merge, and what a filter
/// dropped at its end is published for the `Committer`.
fn finish_page(this: &mut StreamProj<'_>, page: CurrentPage) {
    this.metrics.delivered(&page.shard, page.delivered.records);
    // The merge boxes its readers and futures: it is `Unpin`.
    let merge = Pin::get_mut(this.merge.as_mut());
    let dropped = page.dropped;
    commit(merge, this.delivered, page);
    if let Some(filtering) = this.filtering.as_mut().filter(|_| dropped) {
        filtering.publish(merge.checkpoint());
    }
}

/// What the merge handed over: a page to hand out (with its base positions and lease), an
/// idle reader's news, or a gap.
fn take_update(this: &mut StreamProj<'_>, update: Update) {
    match update {
        Update::Page(page) if page.end == PageEnd::Idle => this.metrics.idle(&page.shard),
        Update::Page(page) => {
            let merge = Pin::get_mut(this.merge.as_mut());
            let base = merge.snapshot();
            if let Some(gap) = &page.gap {
                this.metrics.gap();
                this.gaps.push(gap.clone());
            }
            #[cfg_attr(not(feature = "dynamodb-store"), allow(unused_mut))]
            let mut current = open_page(base, page);
            #[cfg(feature = "dynamodb-store")]
            {
                current.lease = merge.grant(&current.shard);
            }
            *this.page = Some(current);
        }
        Update::Gap(gap) => {
            this.metrics.gap();
            this.gaps.push(gap);
        }
    }
}

impl FusedStream for ChangeStream {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

fn open_page(base: Arc<Snapshot>, page: Page) -> CurrentPage {
    CurrentPage {
        gap: page.gap.map(Arc::new),
        base,
        shard: page.shard,
        changes: page.changes.into_iter(),
        end: page.end,
        head: None,
        returned: None,
        dropped: false,
        delivered: Delivered::default(),
        #[cfg(feature = "dynamodb-store")]
        lease: None,
        _reservation: page.reservation,
    }
}

/// The next event of the current page that the filter keeps, with its checkpoint: the page's
/// base positions plus this shard at this event. O(1): a few reference counts.
fn next_event(
    page: &mut Option<CurrentPage>,
    filtering: &mut Option<Filtering>,
) -> Option<ChangeEvent> {
    let page = page.as_mut()?;
    let (change, position) = loop {
        let change = page.changes.next()?;
        let position = if page.end == PageEnd::ShardEnd && page.changes.len() == 0 {
            ShardPosition::Finished
        } else {
            ShardPosition::After(change.sequence_number().clone())
        };
        page.head = Some(position.clone());
        if filtering.as_ref().is_none_or(|f| f.keeps(&change)) {
            break (change, position);
        }
        page.dropped = true;
    };
    page.dropped = false;
    page.returned = Some(position.clone());
    page.delivered.records += 1;
    page.delivered.last_sequence_number = Some(change.sequence_number().clone());
    page.delivered.last_created = change.created();
    let mut checkpoint = Checkpoint::new(page.base.clone(), page.shard.clone(), position);
    if let Some(filtering) = filtering {
        checkpoint = filtering.yielding(checkpoint);
    }
    #[cfg(feature = "dynamodb-store")]
    let lease = page.lease.as_ref().map(|grant| grant.token.clone());
    #[cfg(not(feature = "dynamodb-store"))]
    let lease = None;
    Some(ChangeEvent::new(change, checkpoint, page.gap.take(), lease))
}

#[cfg(feature = "dynamodb-store")]
mod leased {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::CurrentPage;
    use crate::error::Result;
    use crate::merge::Merge;
    use crate::shard::PageEnd;

    /// Before each event of a leased page: a shard being handed over or lost delivers no
    /// more (the rest of its page is dropped: its positions are not taken), and nothing is
    /// delivered while the lease may have run out (the fence), until a heartbeat succeeds.
    pub(super) fn may_deliver(
        page: &mut Option<CurrentPage>,
        merge: &Pin<&mut Merge>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<()>> {
        let Some(page) = page.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let Some(grant) = &page.lease else {
            return Poll::Ready(Ok(()));
        };
        if page.changes.len() == 0 {
            return Poll::Ready(Ok(()));
        }
        if grant.stopped() {
            // The rest of the page is not delivered, so the shard did not end here.
            page.changes = Vec::new().into_iter();
            page.end = PageEnd::More;
            return Poll::Ready(Ok(()));
        }
        match merge.lessee() {
            Some(lessee) => lessee.fence.poll_open(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

/// Records a fully delivered page in the merge's positions and the delivery counters.
fn commit(merge: &mut Merge, delivered: &mut HashMap<Arc<str>, Delivered>, page: CurrentPage) {
    if page.delivered.records > 0 {
        delivered
            .entry(page.shard.clone())
            .or_default()
            .add(&page.delivered);
    }
    let position = match page.head {
        _ if page.end == PageEnd::ShardEnd => ShardPosition::Finished,
        Some(head) => head,
        None => return,
    };
    // A final page without records, or whose last ones the filter dropped: no event carried
    // the shard's end. What the last event returned carried comes before it.
    let silent_end =
        page.end == PageEnd::ShardEnd && page.returned != Some(ShardPosition::Finished);
    if let Some(returned) = page.returned.filter(|_| silent_end) {
        merge.record(page.shard.clone(), returned, false);
    }
    merge.record(page.shard, position, silent_end);
}
