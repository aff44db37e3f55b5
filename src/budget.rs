//! One memory budget for a whole stream: the bytes of pages fetched and not yet delivered,
//! calls in flight included.
//!
//! A reader reserves [`CALL_RESERVE`] before each `GetRecords` call (what a page may hold;
//! its size is unknown until it arrives), keeps what the page's body turned out to take
//! while the page waits in the pool and while its events are being handed out, and gives
//! the rest back at once. Readers wait for their reservations in the order they asked
//! (tokio's semaphore is first in, first out), so every shard gets its turn and none starves.
//! Idle shards hold nothing between their polls.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub(crate) use crate::config::{CALL_RESERVE, MAX_BUDGET};

/// A stream's budget, shared by its readers.
#[derive(Debug)]
pub(crate) struct Budget {
    bytes: usize,
    free: Arc<Semaphore>,
}

impl Budget {
    /// A budget of `bytes`, at least [`CALL_RESERVE`] and at most [`MAX_BUDGET`] (checked by
    /// the builder; clamped here).
    pub(crate) fn new(bytes: usize) -> Self {
        let bytes = bytes.clamp(CALL_RESERVE, MAX_BUDGET);
        Self {
            bytes,
            free: Arc::new(Semaphore::new(bytes)),
        }
    }

    /// Waits for a call's reservation, in turn.
    pub(crate) async fn reserve(&self) -> Reservation {
        let permits = u32::try_from(CALL_RESERVE).unwrap_or(u32::MAX);
        // The semaphore is never closed: `Err` cannot happen, and would reserve nothing.
        Reservation(self.free.clone().acquire_many_owned(permits).await.ok())
    }

    /// The budget, in bytes.
    pub(crate) fn limit(&self) -> usize {
        self.bytes
    }

    /// Bytes reserved now: pages waiting or being delivered, and calls in flight.
    pub(crate) fn reserved(&self) -> usize {
        self.bytes.saturating_sub(self.free.available_permits())
    }
}

/// Part of the budget, held by a call in flight or a page not yet delivered; given back
/// when dropped.
#[derive(Debug, Default)]
pub(crate) struct Reservation(Option<OwnedSemaphorePermit>);

impl Reservation {
    /// Keeps `bytes` (at least one) of the reservation and gives the rest back. A page larger
    /// than its reservation keeps the whole reservation: the excess is not counted.
    pub(crate) fn shrink_to(&mut self, bytes: usize) {
        let Some(permit) = self.0.as_mut() else {
            return;
        };
        let extra = permit.num_permits().saturating_sub(bytes.max(1));
        if extra > 0 {
            drop(permit.split(extra));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn reservations_wait_in_turn_and_shrink_to_their_pages() {
        let budget = Arc::new(Budget::new(2 * CALL_RESERVE));
        let mut first = budget.reserve().await;
        let second = budget.reserve().await;
        assert_eq!(budget.reserved(), 2 * CALL_RESERVE);
        // A third call waits until something is given back.
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        first.shrink_to(1000);
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "a whole call's worth is not free yet"
        );
        drop(second);
        let third = waiting.await.unwrap();
        assert_eq!(budget.reserved(), CALL_RESERVE + 1000);
        drop((first, third));
        assert_eq!(budget.reserved(), 0);
    }

    #[test]
    fn a_budget_holds_at_least_one_call() {
        assert_eq!(Budget::new(0).limit(), CALL_RESERVE);
        assert_eq!(MAX_BUDGET, Semaphore::MAX_PERMITS);
    }
}
