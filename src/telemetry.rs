//! What a stream exports through the [`metrics`](https://docs.rs/metrics) facade (feature
//! `metrics`): lag, polls, retries, throttles, gaps and shards. The README's table gives every
//! name, unit and label.
//!
//! Counters are counted where the thing happens (the calls in `api`, gaps and deliveries in
//! the stream); the gauges are set from the stream's own [`Status`](crate::status::Status), at
//! most once a second while the stream is polled, so there is no second bookkeeping. Without
//! the feature every hook here is an empty inline function, and readers send no idle pages.

/// Readers hand the stream an empty [`PageEnd::Idle`](crate::shard::PageEnd::Idle) page after
/// the wait that follows each empty poll, so that the stream knows a shard is read to its
/// current end (lag zero). It takes no read-ahead slot.
pub(crate) const IDLE_PAGES: bool = cfg!(feature = "metrics");

/// The name of an operation of the service, as the `operation` label gives it.
pub(crate) type Operation = &'static str;

#[cfg(feature = "metrics")]
mod enabled;
#[cfg(feature = "metrics")]
pub(crate) use enabled::{CallMetrics, StreamMetrics};

/// Without the feature: nothing is recorded.
#[cfg(not(feature = "metrics"))]
#[derive(Debug, Default)]
pub(crate) struct CallMetrics;

#[cfg(not(feature = "metrics"))]
impl CallMetrics {
    pub(crate) fn new(_stream: &std::sync::Arc<str>) -> Self {
        Self
    }

    #[inline(always)]
    pub(crate) fn polled(&self, _shard: &str) {}

    #[inline(always)]
    pub(crate) fn fault(&self, _operation: Operation, _fault: crate::retry::Fault, _retried: bool) {
    }
}

/// Without the feature: nothing is recorded.
#[cfg(not(feature = "metrics"))]
#[derive(Debug, Default)]
pub(crate) struct StreamMetrics;

#[cfg(not(feature = "metrics"))]
impl StreamMetrics {
    pub(crate) fn new(_stream: &std::sync::Arc<str>) -> Self {
        Self
    }

    #[inline(always)]
    pub(crate) fn delivered(&mut self, _shard: &std::sync::Arc<str>, _records: u64) {}

    #[inline(always)]
    pub(crate) fn idle(&mut self, _shard: &std::sync::Arc<str>) {}

    #[inline(always)]
    pub(crate) fn gap(&self) {}

    #[inline(always)]
    pub(crate) fn refresh(
        &mut self,
        _force: bool,
        _status: impl FnOnce() -> (crate::status::Status, usize),
    ) {
    }
}
