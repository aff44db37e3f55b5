//! The crate's one error type.

use std::error::Error as StdError;
use std::fmt;

use crate::sequence::SequenceNumber;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What went wrong. Match on it to decide what to do; never match on message text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The position to read from is older than the stream's 24-hour retention: the records
    /// between it and the trim horizon are gone. This is data loss, and [`Error::shard_id`] and
    /// [`Error::sequence_number`] say where.
    TrimmedData,
    /// The stream (or the shard) does not exist: a wrong ARN, or the stream was disabled and aged out.
    StreamNotFound,
    /// The service kept throttling (`LimitExceededException`) beyond the retry budget.
    Throttled,
    /// The service kept failing (HTTP 5xx) beyond the retry budget.
    Service,
    /// The request never got an answer (connection, timeout) beyond the retry budget.
    Transport,
    /// The service rejected a request as invalid (`ValidationException` and other client
    /// errors): a bug in this crate or input the service does not accept.
    InvalidRequest,
    /// The consumer was configured with invalid values (see [`ChangeStreamBuilder::build`](crate::ChangeStreamBuilder::build)).
    Config,
    /// A checkpoint could not be read: corrupt, truncated, empty or of an unknown version.
    InvalidCheckpoint,
    /// A checkpoint belongs to a different stream than the one being read.
    CheckpointMismatch,
    /// The service sent a record this crate cannot place (no sequence number, unknown event name).
    MalformedRecord,
    /// An image or key could not be decoded into the requested type. Concerns one event only.
    Decode,
    /// A checkpoint store failed to read or write.
    Store,
    /// A checkpoint store refused a write because another process saved a newer position (or,
    /// for a lease table, the worker id is already live).
    Conflict,
    /// Your handler failed on an event
    /// ([`process_by_key`](crate::ChangeStreamExt::process_by_key)): the source is its error.
    Handler,
}

impl ErrorKind {
    fn describe(self) -> &'static str {
        match self {
            Self::TrimmedData => "trimmed data",
            Self::StreamNotFound => "stream not found",
            Self::Throttled => "throttled",
            Self::Service => "service error",
            Self::Transport => "transport error",
            Self::InvalidRequest => "invalid request",
            Self::Config => "invalid configuration",
            Self::InvalidCheckpoint => "invalid checkpoint",
            Self::CheckpointMismatch => "checkpoint of another stream",
            Self::MalformedRecord => "malformed record",
            Self::Decode => "decode error",
            Self::Store => "checkpoint store error",
            Self::Conflict => "checkpoint conflict",
            Self::Handler => "handler failed",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// An error of this crate: opaque, with a [`kind`](Error::kind), the shard it concerns, and the
/// underlying SDK or I/O error as its [`source`](StdError::source).
///
/// An error yielded by a [`ChangeStream`](crate::ChangeStream) ends it, except
/// [`ErrorKind::Decode`], which only ever comes from decoding one event's images.
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    message: String,
    shard_id: Option<String>,
    sequence_number: Option<SequenceNumber>,
    source: Option<BoxError>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                shard_id: None,
                sequence_number: None,
                source: None,
            }),
        }
    }

    pub(crate) fn with_shard(mut self, shard_id: impl Into<String>) -> Self {
        self.inner.shard_id = Some(shard_id.into());
        self
    }

    pub(crate) fn with_sequence_number(mut self, sequence_number: Option<SequenceNumber>) -> Self {
        self.inner.sequence_number = sequence_number;
        self
    }

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    /// Says where the error happened: `location` goes before the message.
    pub(crate) fn at(mut self, location: &str) -> Self {
        self.inner.message = format!("{location}: {}", self.inner.message);
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The shard the error concerns, if it concerns one.
    pub fn shard_id(&self) -> Option<&str> {
        self.inner.shard_id.as_deref()
    }

    /// For [`ErrorKind::TrimmedData`]: the last sequence number read from the shard before the
    /// gap (`None` when nothing had been read from it yet).
    pub fn sequence_number(&self) -> Option<&SequenceNumber> {
        self.inner.sequence_number.as_ref()
    }

    /// Whether the same operation may succeed later: throttling, service faults and transport
    /// failures that outlasted the retry budget. Restarting the stream from the last saved
    /// checkpoint is the usual way to retry.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.inner.kind,
            ErrorKind::Throttled | ErrorKind::Service | ErrorKind::Transport
        )
    }
}

impl Error {
    /// An [`ErrorKind::Store`] error, for implementations of [`CheckpointStore`](crate::CheckpointStore): the store
    /// could not be read or written. `message` should name the store's location; `source`
    /// is the underlying error.
    pub fn store(
        message: impl Into<String>,
        source: impl Into<Box<dyn StdError + Send + Sync + 'static>>,
    ) -> Self {
        Self::new(ErrorKind::Store, message).with_source(source)
    }

    /// An [`ErrorKind::Conflict`] error, for implementations of [`CheckpointStore`](crate::CheckpointStore): another
    /// owner saved a position for the stream, and this write was refused.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.inner.kind, self.inner.message)?;
        if let Some(shard) = &self.inner.shard_id {
            write!(f, " (shard {shard})")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind)
            .field("message", &self.inner.message);
        if let Some(shard) = &self.inner.shard_id {
            d.field("shard_id", shard);
        }
        if let Some(seq) = &self.inner.sequence_number {
            d.field("sequence_number", seq);
        }
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_ref()
            .map(|e| &**e as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_kind_and_shard_but_not_source() {
        let io = std::io::Error::other("disk on fire");
        let err = Error::new(ErrorKind::Store, "cannot save checkpoint")
            .with_shard("shardId-1")
            .with_source(io);
        let text = err.to_string();
        assert!(text.contains("shardId-1"));
        assert!(!text.contains("disk on fire"));
        assert!(err.source().is_some());
        assert!(!err.is_retryable());
        assert!(Error::new(ErrorKind::Throttled, "x").is_retryable());
    }
}
