//! One change to the table, as the stream delivers it.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use aws_sdk_dynamodbstreams::primitives::DateTime;
use aws_sdk_dynamodbstreams::types::{
    AttributeValue, Identity, OperationType, Record, StreamViewType,
};
use serde::de::DeserializeOwned;

use crate::checkpoint::Checkpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::sequence::SequenceNumber;

/// A DynamoDB item or key: attribute names to values.
pub type Item = HashMap<String, AttributeValue>;

/// What happened to the item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// A new item was added (`INSERT`).
    Insert,
    /// An existing item was modified (`MODIFY`), possibly to identical values.
    Modify,
    /// The item was deleted (`REMOVE`), by a user or by TTL (see [`ChangeEvent::is_ttl_delete`]).
    Remove,
}

impl EventKind {
    /// The service's name: `INSERT`, `MODIFY` or `REMOVE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Insert => "INSERT",
            Self::Modify => "MODIFY",
            Self::Remove => "REMOVE",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Records lost to the stream's 24-hour retention, reported when the consumer was told to
/// skip over trimmed data ([`TrimPolicy::SkipToTrimHorizon`](crate::TrimPolicy)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Gap {
    /// The shard that lost records.
    pub shard_id: String,
    /// The last sequence number read from the shard before the gap; `None` when the consumer
    /// had read nothing of it (everything before the trim horizon was lost).
    pub after: Option<SequenceNumber>,
}

/// A stream record without its checkpoint: what a shard reader produces.
#[derive(Clone, Debug)]
pub(crate) struct Change {
    pub(crate) kind: EventKind,
    pub(crate) event_id: String,
    pub(crate) shard_id: Arc<str>,
    pub(crate) sequence_number: SequenceNumber,
    pub(crate) keys: Item,
    pub(crate) new_image: Option<Item>,
    pub(crate) old_image: Option<Item>,
    pub(crate) created: Option<DateTime>,
    pub(crate) size_bytes: Option<i64>,
    pub(crate) view_type: Option<StreamViewType>,
    pub(crate) user_identity: Option<Identity>,
    pub(crate) aws_region: Option<String>,
}

impl Change {
    /// Takes an SDK record apart. A record with no sequence number or an unknown event name
    /// cannot be placed in the stream: that is an error, never a silent skip.
    pub(crate) fn from_record(shard_id: &Arc<str>, record: Record) -> Result<Self> {
        let malformed = |why: String| {
            Error::new(ErrorKind::MalformedRecord, why).with_shard(shard_id.to_string())
        };
        let event_id = record.event_id.unwrap_or_default();
        let stream = record
            .dynamodb
            .ok_or_else(|| malformed(format!("record {event_id:?} has no `dynamodb` section")))?;
        let sequence_number = stream
            .sequence_number
            .as_deref()
            .ok_or_else(|| malformed(format!("record {event_id:?} has no sequence number")))
            .and_then(|s| SequenceNumber::new(s).map_err(|e| malformed(e.to_string())))?;
        let kind = match record.event_name {
            Some(OperationType::Insert) => EventKind::Insert,
            Some(OperationType::Modify) => EventKind::Modify,
            Some(OperationType::Remove) => EventKind::Remove,
            other => {
                return Err(malformed(format!(
                    "record {event_id:?} has an unknown event name {:?}",
                    other.as_ref().map(OperationType::as_str)
                )));
            }
        };
        Ok(Self {
            kind,
            event_id,
            shard_id: shard_id.clone(),
            sequence_number,
            keys: stream.keys.unwrap_or_default(),
            new_image: stream.new_image,
            old_image: stream.old_image,
            created: stream.approximate_creation_date_time,
            size_bytes: stream.size_bytes,
            view_type: stream.stream_view_type,
            user_identity: record.user_identity,
            aws_region: record.aws_region,
        })
    }

    /// The creation time in whole seconds since the epoch, if the record has one.
    pub(crate) fn created_secs(&self) -> Option<i64> {
        self.created.map(|t| t.secs())
    }
}

/// One change to the table: an insert, modify or remove of one item, with the checkpoint that
/// resumes the stream right after it.
///
/// Images are raw attribute-value maps ([`Item`]); [`new_image`](Self::new_image),
/// [`old_image`](Self::old_image) and [`keys`](Self::keys) decode them into your own types
/// through `serde_dynamo`. A decode error concerns this event only.
#[derive(Clone)]
pub struct ChangeEvent {
    change: Change,
    checkpoint: Checkpoint,
    gap: Option<Arc<Gap>>,
}

impl ChangeEvent {
    pub(crate) fn new(change: Change, checkpoint: Checkpoint, gap: Option<Arc<Gap>>) -> Self {
        Self {
            change,
            checkpoint,
            gap,
        }
    }

    /// Records of this event's shard that were lost to retention just before this event
    /// (only with [`TrimPolicy::SkipToTrimHorizon`](crate::TrimPolicy); the default policy
    /// ends the stream with [`ErrorKind::TrimmedData`] instead).
    pub fn gap_before(&self) -> Option<&Gap> {
        self.gap.as_deref()
    }

    /// Insert, modify or remove.
    pub fn kind(&self) -> EventKind {
        self.change.kind
    }

    /// The record's globally unique id (`eventID`).
    pub fn event_id(&self) -> &str {
        &self.change.event_id
    }

    /// The shard the record was read from.
    pub fn shard_id(&self) -> &str {
        &self.change.shard_id
    }

    /// The record's position in its shard.
    pub fn sequence_number(&self) -> &SequenceNumber {
        &self.change.sequence_number
    }

    /// The item's key attributes, raw.
    pub fn raw_keys(&self) -> &Item {
        &self.change.keys
    }

    /// The item after the change, raw: present for `INSERT` and `MODIFY` with the
    /// `NEW_IMAGE` and `NEW_AND_OLD_IMAGES` view types.
    pub fn raw_new_image(&self) -> Option<&Item> {
        self.change.new_image.as_ref()
    }

    /// The item before the change, raw: present for `MODIFY` and `REMOVE` with the
    /// `OLD_IMAGE` and `NEW_AND_OLD_IMAGES` view types.
    pub fn raw_old_image(&self) -> Option<&Item> {
        self.change.old_image.as_ref()
    }

    /// The keys decoded into `K`.
    ///
    /// # Errors
    /// [`ErrorKind::Decode`] when the keys do not fit `K`.
    pub fn keys<K: DeserializeOwned>(&self) -> Result<K> {
        self.decode(&self.change.keys, "keys")
    }

    /// The new image decoded into `T`, or `None` when the record has none.
    ///
    /// # Errors
    /// [`ErrorKind::Decode`] when the image does not fit `T`.
    pub fn new_image<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        self.change
            .new_image
            .as_ref()
            .map(|item| self.decode(item, "new image"))
            .transpose()
    }

    /// The old image decoded into `T`, or `None` when the record has none.
    ///
    /// # Errors
    /// [`ErrorKind::Decode`] when the image does not fit `T`.
    pub fn old_image<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        self.change
            .old_image
            .as_ref()
            .map(|item| self.decode(item, "old image"))
            .transpose()
    }

    fn decode<T: DeserializeOwned>(&self, item: &Item, what: &str) -> Result<T> {
        serde_dynamo::from_item(item.clone()).map_err(|e| {
            Error::new(
                ErrorKind::Decode,
                format!("cannot decode the {what} of event {}", self.change.event_id),
            )
            .with_shard(self.change.shard_id.to_string())
            .with_source(e)
        })
    }

    /// When the change was made, rounded down to the second by the service: never order
    /// events by it.
    pub fn approximate_creation_time(&self) -> Option<SystemTime> {
        self.change
            .created
            .and_then(|t| SystemTime::try_from(t).ok())
    }

    /// The size of the record in bytes, as the service reports it.
    pub fn size_bytes(&self) -> Option<i64> {
        self.change.size_bytes
    }

    /// Which images the stream records.
    pub fn view_type(&self) -> Option<&StreamViewType> {
        self.change.view_type.as_ref()
    }

    /// Who made the change, when the service says (only TTL deletes carry it).
    pub fn user_identity(&self) -> Option<&Identity> {
        self.change.user_identity.as_ref()
    }

    /// The region the record was read in.
    pub fn aws_region(&self) -> Option<&str> {
        self.change.aws_region.as_deref()
    }

    /// Whether DynamoDB's Time to Live deleted the item (a `REMOVE` whose user identity is the
    /// service `dynamodb.amazonaws.com`), as opposed to a user's delete.
    ///
    /// On global tables, replicas in other regions do not carry the identity: there a TTL
    /// delete looks like a user's delete.
    pub fn is_ttl_delete(&self) -> bool {
        self.change.kind == EventKind::Remove
            && self.change.user_identity.as_ref().is_some_and(|id| {
                id.r#type() == Some("Service")
                    && id.principal_id() == Some("dynamodb.amazonaws.com")
            })
    }

    /// The checkpoint that resumes the whole stream right after this event.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// Splits the event into its data and its checkpoint, for code that acknowledges separately.
    pub fn into_checkpoint(self) -> Checkpoint {
        self.checkpoint
    }
}

impl fmt::Debug for ChangeEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeEvent")
            .field("kind", &self.change.kind)
            .field("event_id", &self.change.event_id)
            .field("shard_id", &self.change.shard_id)
            .field("sequence_number", &self.change.sequence_number)
            .field("keys", &self.change.keys)
            .finish_non_exhaustive()
    }
}
