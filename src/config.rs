//! The consumer's options, checked once by the builder, and the time conversions they use.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, ErrorKind, Result};
use crate::retry::RetryPolicy;

/// Where a consumer without a checkpoint starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StartPosition {
    /// The oldest records still in the stream (up to 24 hours back).
    TrimHorizon,
    /// Only records written after the consumer starts. Shards that appear later are still read
    /// from their beginning, so nothing written after the start is lost.
    #[default]
    Latest,
    /// The records created at or after this instant, in every shard (closed ones included),
    /// each shard read from `TRIM_HORIZON` with the older records skipped without being
    /// delivered: DynamoDB Streams has no `AT_TIMESTAMP` iterator. The instant is at most
    /// 24 hours old to find anything (the stream's retention).
    ///
    /// Creation times (`ApproximateCreationDateTime`) are rounded down to the second, so the
    /// instant is compared at second precision: every record of the second that holds it is
    /// delivered, including those written in that second before it; a record of an earlier
    /// second is skipped. A shard stops skipping at its first record of that second or later.
    ///
    /// Checkpoints taken before a shard delivered anything hold the instant
    /// ([`ShardPosition::LatestSince`](crate::ShardPosition::LatestSince)), so resuming from
    /// them skips the same records. [`build`](crate::ChangeStreamBuilder::build) refuses an
    /// instant before the Unix epoch or after the year 9999, and (feature `dynamodb-store`)
    /// the combination with a lease table.
    AtTimestamp(SystemTime),
}

/// What to do when a position is older than the stream's 24-hour retention.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TrimPolicy {
    /// End the stream with [`ErrorKind::TrimmedData`], naming the shard and the last sequence
    /// number read: nothing is skipped without you deciding so.
    #[default]
    Fail,
    /// Go on from the shard's trim horizon. The lost range is still reported: on the first
    /// event after it ([`ChangeEvent::gap_before`](crate::ChangeEvent::gap_before)) and in
    /// [`Status::gaps`](crate::status::Status::gaps).
    SkipToTrimHorizon,
}

/// Where the shard readers run: the SDK's work per page (signing the request, and above all
/// parsing the response's JSON, most of the cost of an event) happens in them.
///
/// Order, read-ahead and memory are the same either way: a reader on its own task still reads
/// a page only when the stream asks for it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Readers {
    /// [`Spawned`](Self::Spawned) when the stream is polled on a multi-threaded tokio runtime,
    /// [`Inline`](Self::Inline) otherwise.
    #[default]
    Auto,
    /// Each shard on its own tokio task, so pages are parsed on the runtime's worker threads
    /// while the consumer handles events. Falls back to inline outside a tokio runtime.
    Spawned,
    /// Every shard polled by the stream itself, on the consumer's task: one thread does all
    /// the work (the cheaper choice on a current-thread runtime).
    Inline,
}

/// How `GetRecords` responses become events.
///
/// Either way the SDK makes the calls (credentials, signing, endpoints, timeouts, retries,
/// error responses) and the events read the same, field for field; what differs is who parses
/// a page's records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Decoding {
    /// The crate parses each successful page itself, in one pass over its bytes, and leaves
    /// images as raw JSON until they are asked for: typed images are decoded straight from it,
    /// raw ones ([`Change::raw_new_image`](crate::Change::raw_new_image)) built on first use.
    /// Several times cheaper per event than the SDK's deserializer. A page in any form it does
    /// not know to read exactly as the SDK does (duplicate keys, floats where integers are
    /// expected, nulls inside images, attribute types it does not know) is decoded by the SDK
    /// instead, from the same bytes: nothing is lost or read twice.
    /// [`Status::pages`](crate::status::Status::pages) counts both.
    #[default]
    Raw,
    /// The SDK's own deserializer for every page: each record's images are decoded into
    /// [`Item`](crate::Item)s as the page arrives.
    Sdk,
}

/// The longest any configured wait may be. Longer ones are refused by `build()`: they would
/// overflow the clock's arithmetic, and no consumer wants to wait an hour between polls.
pub(crate) const LONGEST_WAIT: Duration = Duration::from_secs(3600);

/// Consecutive empty pages after which an open shard counts as read to its current end in
/// catch-up mode (empty pages happen mid-shard too, so one is not enough).
const CATCH_UP_EMPTY_PAGES: u32 = 3;

/// What one `GetRecords` call reserves of the memory budget before it is made: the service's
/// page cap (1 MB of records) with room for the JSON around them.
pub(crate) const CALL_RESERVE: usize = 1 << 20;

/// The memory budget's default: sized for a small machine.
pub(crate) const DEFAULT_BUDGET: usize = 256 << 20;

/// The largest memory budget (what tokio's semaphore can count).
pub(crate) const MAX_BUDGET: usize = usize::MAX >> 3;

/// How a consumer reads: every setting of the builder but the client, the stream and where it
/// starts.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    pub(crate) page_size: u32,
    pub(crate) read_ahead: usize,
    pub(crate) poll_interval: Duration,
    pub(crate) max_poll_interval: Duration,
    pub(crate) describe_interval: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) catch_up: bool,
    pub(crate) trim_policy: TrimPolicy,
    pub(crate) readers: Readers,
    pub(crate) decoding: Decoding,
    /// Bytes of pages fetched and not yet delivered, calls in flight included.
    pub(crate) memory_budget: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            page_size: 1000,
            read_ahead: 1,
            poll_interval: Duration::from_millis(250),
            max_poll_interval: Duration::from_secs(2),
            describe_interval: Duration::from_millis(200),
            retry: RetryPolicy::default(),
            catch_up: false,
            trim_policy: TrimPolicy::default(),
            readers: Readers::default(),
            decoding: Decoding::default(),
            memory_budget: DEFAULT_BUDGET,
        }
    }
}

impl Options {
    /// Checks every value: what `build()` reports as [`ErrorKind::Config`].
    pub(crate) fn validate(&self) -> Result<()> {
        let config = |why: String| Err(Error::new(ErrorKind::Config, why));
        if !(1..=1000).contains(&self.page_size) {
            return config(format!("page size {} is outside 1..=1000", self.page_size));
        }
        if self.read_ahead == 0 {
            return config("read-ahead must be at least one page".into());
        }
        let budget = CALL_RESERVE..=MAX_BUDGET;
        if !budget.contains(&self.memory_budget) {
            return config(format!(
                "memory budget of {} bytes is outside {} bytes (one page) ..= {} bytes",
                self.memory_budget,
                budget.start(),
                budget.end()
            ));
        }
        let waits = [
            ("poll interval", self.poll_interval),
            ("maximum poll interval", self.max_poll_interval),
            ("describe interval", self.describe_interval),
            ("retry base delay", self.retry.base),
            ("retry maximum delay", self.retry.max),
        ];
        if let Some((name, wait)) = waits.iter().find(|(_, wait)| *wait > LONGEST_WAIT) {
            return config(format!(
                "the {name} {wait:?} is above the longest wait allowed, {LONGEST_WAIT:?}"
            ));
        }
        if self.poll_interval.is_zero() || self.poll_interval > self.max_poll_interval {
            return config(format!(
                "poll interval {:?} must be above zero and at most the maximum {:?}",
                self.poll_interval, self.max_poll_interval
            ));
        }
        if self.retry.base > self.retry.max {
            return config(format!(
                "retry base delay {:?} is above the maximum delay {:?}",
                self.retry.base, self.retry.max
            ));
        }
        Ok(())
    }

    /// Catch-up mode: this many consecutive empty pages end an open shard's reading.
    pub(crate) fn catch_up_after(&self) -> Option<u32> {
        self.catch_up.then_some(CATCH_UP_EMPTY_PAGES)
    }

    pub(crate) fn skip_trimmed(&self) -> bool {
        self.trim_policy == TrimPolicy::SkipToTrimHorizon
    }
}

/// The latest instant [`StartPosition::AtTimestamp`] accepts: 9999-12-31T23:59:59Z, the end
/// of RFC 3339's range.
pub(crate) const LATEST_TIMESTAMP_SECS: u64 = 253_402_300_799;

/// Checks a start position: a timestamp must lie between the Unix epoch and the year 9999.
/// Returns the timestamp's whole seconds since the epoch, for `AtTimestamp`.
pub(crate) fn validate_start(start: StartPosition) -> Result<Option<i64>> {
    let StartPosition::AtTimestamp(t) = start else {
        return Ok(None);
    };
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) if d.as_secs() <= LATEST_TIMESTAMP_SECS => Ok(i64::try_from(d.as_secs()).ok()),
        Ok(d) => Err(Error::new(
            ErrorKind::Config,
            format!(
                "the start timestamp, {} s after the Unix epoch, is after 9999-12-31T23:59:59Z",
                d.as_secs()
            ),
        )),
        Err(e) => Err(Error::new(
            ErrorKind::Config,
            format!(
                "the start timestamp is {:?} before the Unix epoch",
                e.duration()
            ),
        )),
    }
}

/// Whole seconds since the Unix epoch (0 before it).
pub(crate) fn epoch_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The instant `secs` whole seconds after the Unix epoch (the epoch for negative values).
pub(crate) fn at_epoch_secs(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        assert!(Options::default().validate().is_ok());
    }

    #[test]
    fn every_wait_is_bounded() {
        let cases: [fn(&mut Options, Duration); 5] = [
            |o, d| o.poll_interval = d,
            |o, d| o.max_poll_interval = d,
            |o, d| o.describe_interval = d,
            |o, d| o.retry.base = d,
            |o, d| o.retry.max = d,
        ];
        for (i, set) in cases.iter().enumerate() {
            let mut options = Options::default();
            set(&mut options, Duration::MAX);
            let err = options.validate().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config, "case {i}");
        }
    }

    #[test]
    fn start_timestamps_are_bounded() {
        let at = |secs: u64| StartPosition::AtTimestamp(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(validate_start(StartPosition::Latest).unwrap(), None);
        assert_eq!(validate_start(at(0)).unwrap(), Some(0));
        assert_eq!(
            validate_start(at(LATEST_TIMESTAMP_SECS)).unwrap(),
            Some(253_402_300_799)
        );
        for bad in [
            at(LATEST_TIMESTAMP_SECS + 1),
            at(LATEST_TIMESTAMP_SECS * 100),
            StartPosition::AtTimestamp(UNIX_EPOCH - Duration::from_nanos(1)),
        ] {
            assert_eq!(validate_start(bad).unwrap_err().kind(), ErrorKind::Config);
        }
    }

    #[test]
    fn epoch_seconds_round_trip_and_clamp() {
        assert_eq!(epoch_secs(at_epoch_secs(1_700_000_000)), 1_700_000_000);
        assert_eq!(at_epoch_secs(-5), UNIX_EPOCH);
        assert_eq!(epoch_secs(UNIX_EPOCH - Duration::from_secs(10)), 0);
    }
}
