//! The hooks, with the feature: handles registered once per stream (the stream-wide series)
//! or when a value is set (the per-shard series).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics::{Counter, Gauge, Unit, counter, describe_counter, describe_gauge, gauge};
use tokio::time::Instant;

use super::Operation;
use crate::retry::Fault;
use crate::status::{ShardState, ShardStatus, Status};

/// The exported names (the README's table).
pub(crate) mod names {
    pub(crate) const RECORDS: &str = "dynamodb_stream_records_delivered_total";
    pub(crate) const POLLS: &str = "dynamodb_stream_polls_total";
    pub(crate) const RETRIES: &str = "dynamodb_stream_retries_total";
    pub(crate) const THROTTLES: &str = "dynamodb_stream_throttles_total";
    pub(crate) const GAPS: &str = "dynamodb_stream_gaps_total";
    pub(crate) const AGE: &str = "dynamodb_stream_iterator_age_seconds";
    pub(crate) const LAST_POLL: &str = "dynamodb_stream_last_poll_timestamp_seconds";
    pub(crate) const READ_AHEAD: &str = "dynamodb_stream_records_read_ahead";
    pub(crate) const SHARDS: &str = "dynamodb_stream_shards";
    pub(crate) const HELD: &str = "dynamodb_stream_shards_held";
    pub(crate) const SHARD_AGE: &str = "dynamodb_stream_shard_iterator_age_seconds";
    pub(crate) const SHARD_LAST_POLL: &str = "dynamodb_stream_shard_last_poll_timestamp_seconds";
}

use names::*;

/// The gauges are set at most this often (and when the stream ends).
const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// The `state` label of [`SHARDS`], in [`state_index`] order.
const STATES: [&str; 4] = ["waiting", "reading", "caught_up", "finished"];

fn state_index(state: ShardState) -> usize {
    match state {
        ShardState::Waiting => 0,
        ShardState::Reading => 1,
        ShardState::CaughtUp => 2,
        ShardState::Finished => 3,
    }
}

fn fault_label(fault: Fault) -> &'static str {
    match fault {
        Fault::Throttled => "throttled",
        Fault::Server => "server",
        Fault::Transport => "transport",
        // Only transient faults are retried.
        _ => "other",
    }
}

/// Now, in seconds since the Unix epoch.
fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// What the calls record: shared by a stream's readers (in the `api::Context`).
#[derive(Debug)]
pub(crate) struct CallMetrics {
    stream: Arc<str>,
    polls: Counter,
    last_poll: Gauge,
}

impl CallMetrics {
    pub(crate) fn new(stream: &Arc<str>) -> Self {
        Self {
            stream: stream.clone(),
            polls: counter!(POLLS, "stream" => stream.to_string()),
            last_poll: gauge!(LAST_POLL, "stream" => stream.to_string()),
        }
    }

    /// A `GetRecords` call on `shard` succeeded (with or without records).
    pub(crate) fn polled(&self, shard: &str) {
        let now = unix_now();
        self.polls.increment(1);
        self.last_poll.set(now);
        gauge!(SHARD_LAST_POLL, "stream" => self.stream.to_string(), "shard" => shard.to_owned())
            .set(now);
    }

    /// A call failed with `fault` (after the SDK's own attempts); `retried`: it is tried again.
    pub(crate) fn fault(&self, operation: Operation, fault: Fault, retried: bool) {
        let stream = || self.stream.to_string();
        if fault == Fault::Throttled {
            counter!(THROTTLES, "stream" => stream(), "operation" => operation).increment(1);
        }
        if retried {
            let fault = fault_label(fault);
            counter!(RETRIES, "stream" => stream(), "operation" => operation, "fault" => fault)
                .increment(1);
        }
    }
}

/// What the stream records: deliveries and gaps as they happen, the gauges from its status.
#[derive(Debug)]
pub(crate) struct StreamMetrics {
    stream: Arc<str>,
    records: Counter,
    gaps: Counter,
    age: Gauge,
    read_ahead: Gauge,
    held: Gauge,
    shards: [Gauge; 4],
    /// Shards whose reader found nothing newer than what was delivered from them.
    at_tip: HashSet<Arc<str>>,
    /// Finished shards whose gauges were set for the last time.
    finished: HashSet<String>,
    next_refresh: Option<Instant>,
}

impl StreamMetrics {
    pub(crate) fn new(stream: &Arc<str>) -> Self {
        describe();
        let label = || stream.to_string();
        Self {
            stream: stream.clone(),
            records: counter!(RECORDS, "stream" => label()),
            gaps: counter!(GAPS, "stream" => label()),
            age: gauge!(AGE, "stream" => label()),
            read_ahead: gauge!(READ_AHEAD, "stream" => label()),
            held: gauge!(HELD, "stream" => label()),
            shards: STATES.map(|state| gauge!(SHARDS, "stream" => label(), "state" => state)),
            at_tip: HashSet::new(),
            finished: HashSet::new(),
            next_refresh: None,
        }
    }

    /// Every event of a page of `shard` was handed out.
    pub(crate) fn delivered(&mut self, shard: &Arc<str>, records: u64) {
        if records > 0 {
            self.records.increment(records);
            self.at_tip.remove(shard);
        }
    }

    /// `shard`'s reader found no records after everything delivered from it.
    pub(crate) fn idle(&mut self, shard: &Arc<str>) {
        if !self.at_tip.contains(shard) {
            self.at_tip.insert(shard.clone());
        }
    }

    /// Records were lost to retention and skipped over.
    pub(crate) fn gap(&self) {
        self.gaps.increment(1);
    }

    /// Sets the gauges from `status` (the stream's status and the records read ahead of the
    /// consumer) if a second has passed since the last time, or if `force`d.
    pub(crate) fn refresh(&mut self, force: bool, status: impl FnOnce() -> (Status, usize)) {
        let now = Instant::now();
        if !force && self.next_refresh.is_some_and(|next| now < next) {
            return;
        }
        self.next_refresh = Some(now + REFRESH_EVERY);
        let (status, read_ahead) = status();
        self.publish(&status, read_ahead);
    }

    fn publish(&mut self, status: &Status, read_ahead: usize) {
        let mut by_state = [0usize; 4];
        let mut oldest = 0.0f64;
        for shard in &status.shards {
            by_state[state_index(shard.state)] += 1;
            if self.finished.contains(&shard.shard_id) {
                continue;
            }
            let Some(age) = self.age_of(shard) else {
                continue;
            };
            oldest = oldest.max(age);
            gauge!(SHARD_AGE, "stream" => self.stream.to_string(), "shard" => shard.shard_id.clone())
                .set(age);
            if shard.state == ShardState::Finished {
                // Set for the last time: an exporter's idle timeout can drop the series.
                self.at_tip.remove(shard.shard_id.as_str());
                self.finished.insert(shard.shard_id.clone());
            }
        }
        for (gauge, count) in self.shards.iter().zip(by_state) {
            gauge.set(count as f64);
        }
        let held = status
            .lease
            .as_ref()
            .map_or(by_state[state_index(ShardState::Reading)], |l| l.held.len());
        self.held.set(held as f64);
        self.age.set(oldest);
        self.read_ahead.set(read_ahead as f64);
    }

    /// The shard's lag: how old its last delivered record is, zero once it is read to its
    /// (current) end; unknown while it has delivered nothing.
    fn age_of(&self, shard: &ShardStatus) -> Option<f64> {
        match shard.state {
            ShardState::Waiting => None,
            ShardState::CaughtUp | ShardState::Finished => Some(0.0),
            _ if self.at_tip.contains(shard.shard_id.as_str()) => Some(0.0),
            _ => shard.last_record_age.map(|age| age.as_secs_f64()),
        }
    }
}

/// Units and descriptions, for exporters that show them.
fn describe() {
    let counters = [
        (RECORDS, "records delivered to the consumer"),
        (
            POLLS,
            "successful GetRecords calls, with or without records",
        ),
        (
            RETRIES,
            "calls retried after a transient fault, beyond the SDK's own attempts",
        ),
        (
            THROTTLES,
            "calls throttled (after the SDK's own attempts), retried or not",
        ),
        (GAPS, "ranges of records lost to retention and skipped over"),
    ];
    for (name, what) in counters {
        describe_counter!(name, Unit::Count, what);
    }
    let gauges = [
        (AGE, Unit::Seconds, "the largest shard iterator age"),
        (
            LAST_POLL,
            Unit::Seconds,
            "when a GetRecords call last succeeded (Unix time)",
        ),
        (
            READ_AHEAD,
            Unit::Count,
            "records read but not yet delivered",
        ),
        (SHARDS, Unit::Count, "known shards, by state"),
        (
            HELD,
            Unit::Count,
            "shards being read (held, with a lease table)",
        ),
        (
            SHARD_AGE,
            Unit::Seconds,
            "now minus the creation time of the shard's last delivered record; 0 once read to its end",
        ),
        (
            SHARD_LAST_POLL,
            Unit::Seconds,
            "when a GetRecords call on the shard last succeeded (Unix time)",
        ),
    ];
    for (name, unit, what) in gauges {
        describe_gauge!(name, unit, what);
    }
}
