//! Fault classification and backoff: pure decisions the async readers act on.

use std::time::Duration;

use aws_sdk_dynamodbstreams::error::{ProvideErrorMetadata, SdkError};

use crate::error::{Error, ErrorKind};

/// What an SDK error means for the consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The shard iterator is older than 15 minutes: take a new one, silently.
    ExpiredIterator,
    /// The position is older than the retention period: data loss, surfaced.
    Trimmed,
    /// Stream or shard does not exist.
    NotFound,
    /// Throttled: back off and retry within the budget.
    Throttled,
    /// Server fault (5xx): back off and retry within the budget.
    Server,
    /// No answer (connection, timeout, unreadable response): back off and retry within the budget.
    Transport,
    /// The request was rejected as invalid: terminal.
    Invalid,
    /// The client could not even send the request (no credentials, no HTTP client, a
    /// signing failure): terminal, a configuration problem.
    Setup,
}

impl Fault {
    pub(crate) fn is_transient(self) -> bool {
        matches!(self, Self::Throttled | Self::Server | Self::Transport)
    }

    /// The error kind a fault becomes once it reaches the user.
    pub(crate) fn kind(self) -> ErrorKind {
        match self {
            Self::ExpiredIterator | Self::Invalid => ErrorKind::InvalidRequest,
            Self::Trimmed => ErrorKind::TrimmedData,
            Self::NotFound => ErrorKind::StreamNotFound,
            Self::Throttled => ErrorKind::Throttled,
            Self::Server => ErrorKind::Service,
            Self::Transport => ErrorKind::Transport,
            Self::Setup => ErrorKind::Config,
        }
    }
}

/// Classifies by the service's error code, falling back to the HTTP status.
pub(crate) fn classify_code(code: Option<&str>, status: Option<u16>) -> Fault {
    match code {
        Some("ExpiredIteratorException") => Fault::ExpiredIterator,
        Some("TrimmedDataAccessException") => Fault::Trimmed,
        Some("ResourceNotFoundException") => Fault::NotFound,
        Some(
            "LimitExceededException"
            | "ThrottlingException"
            | "ProvisionedThroughputExceededException"
            | "RequestLimitExceeded"
            | "TooManyRequestsException",
        ) => Fault::Throttled,
        Some("InternalServerError" | "InternalFailure" | "ServiceUnavailable") => Fault::Server,
        _ => match status {
            Some(429) => Fault::Throttled,
            Some(s) if s >= 500 => Fault::Server,
            Some(_) => Fault::Invalid,
            None => Fault::Transport,
        },
    }
}

pub(crate) fn classify<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Fault
where
    R: HasStatus,
{
    match err {
        SdkError::ServiceError(service) => {
            classify_code(service.err().code(), Some(service.raw().status_code()))
        }
        SdkError::ConstructionFailure(_) => Fault::Invalid,
        // Only a network failure or a timeout may pass; missing credentials never will.
        SdkError::DispatchFailure(failure) if !(failure.is_io() || failure.is_timeout()) => {
            Fault::Setup
        }
        SdkError::ResponseError(response) => {
            classify_code(None, Some(response.raw().status_code())).max_transient()
        }
        // Timeouts and dispatch failures, and anything a future SDK adds.
        _ => Fault::Transport,
    }
}

impl Fault {
    /// An unreadable response is a transport problem unless the status says the server failed.
    fn max_transient(self) -> Self {
        if self == Self::Server {
            self
        } else {
            Self::Transport
        }
    }
}

/// Access to an HTTP response's status, whatever the SDK's response type.
pub(crate) trait HasStatus {
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_smithy_runtime_api::http::Response {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// Turns an SDK error into this crate's error: `what` says which call failed, and the SDK's
/// error, with the service's message, is the source (never copied into the message).
pub(crate) fn to_error<E, R>(fault: Fault, what: &str, err: SdkError<E, R>) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    Error::new(fault.kind(), what).with_source(err)
}

/// How transient faults are retried beyond the SDK's own attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// Retries after the first failure before the error reaches the user.
    pub(crate) max_retries: u32,
    pub(crate) base: Duration,
    pub(crate) max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 10,
            base: Duration::from_millis(200),
            max: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `attempt` (0-based): exponential, capped, with "equal jitter"
    /// (half fixed, half random, `unit` in [0, 1)) so readers that failed together spread out
    /// without ever retrying at once.
    pub(crate) fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let exp = self.base.saturating_mul(1u32 << attempt.min(20));
        let capped = exp.min(self.max);
        let half = capped / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// Delay after an empty page: starts at `min` and doubles with each consecutive empty page up
/// to `max`, so idle shards cost few calls while a shard with a backlog is never slept on.
pub(crate) fn idle_delay(empty_pages: u32, min: Duration, max: Duration) -> Duration {
    let shift = empty_pages.saturating_sub(1).min(20);
    min.saturating_mul(1u32 << shift).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_faults() {
        let cases = [
            ("ExpiredIteratorException", 400, Fault::ExpiredIterator),
            ("TrimmedDataAccessException", 400, Fault::Trimmed),
            ("ResourceNotFoundException", 400, Fault::NotFound),
            ("LimitExceededException", 400, Fault::Throttled),
            ("InternalServerError", 500, Fault::Server),
            ("ValidationException", 400, Fault::Invalid),
        ];
        for (code, status, fault) in cases {
            assert_eq!(classify_code(Some(code), Some(status)), fault, "{code}");
        }
        assert_eq!(classify_code(None, Some(500)), Fault::Server);
        assert_eq!(classify_code(None, Some(503)), Fault::Server);
        assert_eq!(classify_code(None, Some(429)), Fault::Throttled);
        assert_eq!(classify_code(None, Some(400)), Fault::Invalid);
        assert_eq!(classify_code(None, None), Fault::Transport);
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(0, 0.0), Duration::from_millis(100));
        assert_eq!(p.delay(0, 1.0), Duration::from_millis(200));
        assert!(p.delay(3, 0.5) > p.delay(2, 0.5));
        assert_eq!(p.delay(30, 1.0), Duration::from_secs(10));
        assert_eq!(p.delay(30, 0.0), Duration::from_secs(5));
    }

    #[test]
    fn idle_delay_doubles_to_its_cap() {
        let (min, max) = (Duration::from_millis(250), Duration::from_secs(2));
        let delays: Vec<_> = (1..6)
            .map(|n| idle_delay(n, min, max).as_millis())
            .collect();
        assert_eq!(delays, [250, 500, 1000, 2000, 2000]);
    }
}
