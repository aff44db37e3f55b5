//! Where one shard's reading stands, and what each answer of the service means for it.
//!
//! Pure: the reader (`shard/mod.rs`) makes the calls the cursor asks for and hands it the
//! answers; every decision (which iterator to ask for, what a fault means, whether a page is
//! yielded, slept on, or ends the shard) is made here.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodbstreams::types::ShardIteratorType;

use crate::api::Failure;
use crate::budget::Reservation;
use crate::checkpoint::resume::ShardStart;
use crate::config::Options;
use crate::error::Error;
use crate::event::{Change, Origin};
use crate::retry::{Fault, idle_delay};
use crate::sequence::SequenceNumber;
use crate::status::Gap;

/// How a page ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PageEnd {
    /// The shard goes on.
    More,
    /// The shard is closed and this was its last page (`NextShardIterator` absent).
    ShardEnd,
    /// Catch-up mode: the open shard is read to its current end. Carries no records.
    CaughtUp,
    /// The last call found no records: the shard is read to its current end for now (or the
    /// service returned an empty page mid-shard). Carries no records; only sent for the
    /// metrics ([`IDLE_PAGES`](crate::telemetry::IDLE_PAGES)).
    Idle,
}

/// Records read from one shard in one `GetRecords` call.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) shard: Arc<str>,
    pub(crate) changes: Vec<Change>,
    pub(crate) end: PageEnd,
    /// Records lost to retention just before this page (trim policy "skip").
    pub(crate) gap: Option<Gap>,
    /// The page's share of the stream's memory budget, held until it is delivered.
    pub(crate) reservation: Reservation,
}

/// What the reader does after a call: hand on a page (or not), then go on as told.
#[derive(Debug)]
pub(crate) struct Step {
    pub(crate) page: Option<Page>,
    pub(crate) then: Then,
}

#[derive(Debug)]
pub(crate) enum Then {
    /// Call again at once: a backlog, or a new iterator to take.
    ReadOn,
    /// Nothing new yet: call again after this long.
    Sleep(Duration),
    /// The shard is read (to its end, or in catch-up mode to its current end).
    Done,
    /// The error ends the reader.
    Fail(Error),
}

/// The settings the cursor decides by.
#[derive(Clone, Copy, Debug)]
struct Rules {
    max_retries: u32,
    catch_up_after: Option<u32>,
    poll_interval: Duration,
    max_poll_interval: Duration,
    skip_trimmed: bool,
}

/// One shard's reading position and its fault budget.
#[derive(Debug)]
pub(crate) struct Cursor {
    shard: Arc<str>,
    /// The stream and shard, shared by every record read.
    origin: Arc<Origin>,
    start: ShardStart,
    /// The last sequence number read from the shard (delivered or filtered out): where a new
    /// iterator starts after an expiry.
    last_read: Option<SequenceNumber>,
    /// Records created before this instant (epoch seconds) are skipped: a `LATEST` start
    /// read from the trim horizon. Records from a `LATEST` iterator are new by definition.
    since: Option<i64>,
    iterator: Option<String>,
    /// No iterator was asked for yet: `LATEST` is asked for at most once.
    first: bool,
    /// Consecutive expiries and trims: each has its own bound, so a service that only ever
    /// answers "expired" cannot keep a reader looping.
    expiries: u32,
    trims: u32,
    empty_pages: u32,
    /// The shard is closed: its empty pages are read on back to back (no new records can
    /// arrive there, so waiting would only delay its children), up to
    /// [`CLOSED_EMPTY_READ_ON`] in a row.
    closed: bool,
    gap: Option<Gap>,
    rules: Rules,
}

/// Consecutive empty pages of a closed shard read back to back before the idle back-off
/// applies again: a bound, so that a service that never ends a closed shard cannot keep a
/// reader spinning.
const CLOSED_EMPTY_READ_ON: u32 = 100;

impl Cursor {
    pub(crate) fn new(
        stream_arn: &Arc<str>,
        shard: Arc<str>,
        start: ShardStart,
        options: &Options,
    ) -> Self {
        let last_read = match &start {
            ShardStart::After(seq) => Some(seq.clone()),
            _ => None,
        };
        let since = match start {
            ShardStart::Since(t) => Some(t),
            _ => None,
        };
        let iterator = match &start {
            ShardStart::Iterator { iterator, .. } => Some(iterator.clone()),
            _ => None,
        };
        Self {
            origin: Origin::new(stream_arn.clone(), Some(shard.clone())),
            shard,
            start,
            last_read,
            since,
            first: iterator.is_none(),
            iterator,
            expiries: 0,
            trims: 0,
            empty_pages: 0,
            closed: false,
            gap: None,
            rules: Rules {
                max_retries: options.retry.max_retries,
                catch_up_after: options.catch_up_after(),
                poll_interval: options.poll_interval,
                max_poll_interval: options.max_poll_interval,
                skip_trimmed: options.skip_trimmed(),
            },
        }
    }

    /// The shard is known to be closed (its `EndingSequenceNumber` was listed).
    pub(crate) fn closed(&mut self) {
        self.closed = true;
    }

    pub(crate) fn shard(&self) -> &Arc<str> {
        &self.shard
    }

    /// Where the shard's records come from.
    pub(crate) fn origin(&self) -> &Arc<Origin> {
        &self.origin
    }

    /// The iterator for the next `GetRecords`, if the last page gave one.
    pub(crate) fn take_iterator(&mut self) -> Option<String> {
        self.iterator.take()
    }

    /// The iterator to ask for: after the last record read if there is one, else the shard's
    /// own start. Never `LATEST` again once the first `LATEST` iterator is gone: records
    /// written meanwhile would be lost.
    pub(crate) fn iterator_request(&mut self) -> (ShardIteratorType, Option<SequenceNumber>) {
        let first = std::mem::replace(&mut self.first, false);
        match (&self.last_read, &self.start) {
            (Some(seq), _) | (None, ShardStart::After(seq)) => {
                (ShardIteratorType::AfterSequenceNumber, Some(seq.clone()))
            }
            (None, ShardStart::Latest { .. }) if first => (ShardIteratorType::Latest, None),
            (None, _) => (ShardIteratorType::TrimHorizon, None),
        }
    }

    /// A call failed for good: expiries and (under the skip policy) trims are recovered from,
    /// anything else ends the reader.
    pub(crate) fn on_failure(&mut self, failure: Failure) -> Step {
        let then = match failure.fault {
            Fault::ExpiredIterator if self.expiries < self.rules.max_retries => {
                self.expiries += 1;
                tracing::debug!(shard = %self.shard, "shard iterator expired; taking a new one");
                if let (None, ShardStart::Latest { since } | ShardStart::Iterator { since, .. }) =
                    (&self.last_read, &self.start)
                {
                    // Nothing read since the LATEST start: from the trim horizon, skipping
                    // what came before the start.
                    self.since = Some(*since);
                }
                Then::ReadOn
            }
            Fault::Trimmed if self.rules.skip_trimmed && self.trims < self.rules.max_retries => {
                self.trims += 1;
                self.skip_to_horizon();
                Then::ReadOn
            }
            _ => Then::Fail(
                failure
                    .error
                    .with_shard(self.shard.to_string())
                    .with_sequence_number(self.last_read.clone()),
            ),
        };
        Step { page: None, then }
    }

    /// Trim policy "skip": read on from the trim horizon, and say what was lost.
    fn skip_to_horizon(&mut self) {
        tracing::warn!(shard = %self.shard, after = ?self.last_read, "records were trimmed before they were read; skipping to the trim horizon");
        self.start = ShardStart::TrimHorizon;
        self.since = None;
        self.gap = Some(Gap {
            shard_id: self.shard.to_string(),
            after: self.last_read.take(),
        });
    }

    /// A page arrived: `changes` are its records in order, up to the first malformed one if
    /// there is one (`malformed`), `next` its `NextShardIterator`.
    ///
    /// Records already read (a new iterator may overlap) and, for a `LATEST` start read from
    /// the trim horizon, records created before the start are dropped. A malformed record
    /// ends the reader after the good records before it.
    pub(crate) fn on_page(
        &mut self,
        mut changes: Vec<Change>,
        malformed: Option<Error>,
        next: Option<String>,
    ) -> Step {
        self.expiries = 0;
        self.trims = 0;
        // A page of records that are all dropped is still a backlog being read, not an idle
        // shard: it must not count towards catching up, nor slow the polling down.
        let read_some = !changes.is_empty();
        changes.retain(|change| self.keep(change));
        let kept = changes;
        if let Some(e) = malformed {
            let page = (!kept.is_empty()).then(|| self.page(kept, PageEnd::More));
            return Step {
                page,
                then: Then::Fail(e),
            };
        }
        let Some(next) = next else {
            tracing::info!(shard = %self.shard, "shard read to its end");
            return self.yield_page(kept, PageEnd::ShardEnd, Then::Done);
        };
        self.iterator = Some(next);
        if !kept.is_empty() {
            self.empty_pages = 0;
            // A backlog is read back to back: no sleep after a page with records.
            return self.yield_page(kept, PageEnd::More, Then::ReadOn);
        }
        if read_some {
            self.empty_pages = 0;
            return Step {
                page: None,
                then: Then::ReadOn,
            };
        }
        self.on_empty_page()
    }

    /// An open shard returned no records: caught up after enough of them in catch-up mode,
    /// else polled again after a delay that grows with each empty page.
    fn on_empty_page(&mut self) -> Step {
        self.empty_pages += 1;
        if self.closed && self.empty_pages <= CLOSED_EMPTY_READ_ON {
            return Step {
                page: None,
                then: Then::ReadOn,
            };
        }
        if let Some(n) = self.rules.catch_up_after {
            if self.empty_pages >= n {
                tracing::debug!(shard = %self.shard, "shard caught up");
                return self.yield_page(Vec::new(), PageEnd::CaughtUp, Then::Done);
            }
            return Step {
                page: None,
                then: Then::Sleep(self.rules.poll_interval.min(Duration::from_millis(50))),
            };
        }
        let delay = idle_delay(
            self.empty_pages,
            self.rules.poll_interval,
            self.rules.max_poll_interval,
        );
        Step {
            page: None,
            then: Then::Sleep(delay),
        }
    }

    /// Whether a record read from the shard is delivered; notes it as read either way.
    fn keep(&mut self, change: &Change) -> bool {
        let seq = change.sequence_number();
        if self.last_read.as_ref().is_some_and(|last| seq <= last) {
            return false;
        }
        self.last_read = Some(seq.clone());
        if let Some(t) = self.since {
            if change.created_secs().is_some_and(|c| c < t) {
                return false;
            }
            self.since = None;
        }
        true
    }

    fn page(&mut self, changes: Vec<Change>, end: PageEnd) -> Page {
        Page {
            shard: self.shard.clone(),
            changes,
            end,
            gap: self.gap.take(),
            reservation: Reservation::default(),
        }
    }

    fn yield_page(&mut self, changes: Vec<Change>, end: PageEnd, then: Then) -> Step {
        Step {
            page: Some(self.page(changes, end)),
            then,
        }
    }
}

#[cfg(test)]
mod tests;
