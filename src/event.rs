//! One change to the table, as the stream delivers it.

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash as _, Hasher as _};
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
use crate::status::{Gap, LeaseToken};

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
    /// The item was deleted (`REMOVE`), by a user or by TTL (see [`Change::is_ttl_delete`]).
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

/// One change to one item, as the stream recorded it: the data of a [`ChangeEvent`], without
/// its checkpoint.
///
/// A [`ChangeEvent`] dereferences to its `Change`, so code written against `&Change` takes
/// either; [`ChangeEvent::into_parts`] splits one into its `Change` and its [`Checkpoint`].
///
/// Images are raw attribute-value maps ([`Item`]); [`new_image`](Self::new_image),
/// [`old_image`](Self::old_image) and [`keys`](Self::keys) decode them into your own types
/// through `serde_dynamo`. A decode error concerns this change only.
#[derive(Clone, PartialEq)]
pub struct Change {
    kind: EventKind,
    event_id: String,
    origin: Arc<Origin>,
    sequence_number: SequenceNumber,
    keys: Item,
    new_image: Option<Item>,
    old_image: Option<Item>,
    created: Option<DateTime>,
    size_bytes: Option<i64>,
    view_type: Option<StreamViewType>,
    user_identity: Option<Identity>,
    aws_region: Option<String>,
}

/// An item's identity: a hash of its key attributes, equal for the changes of one item. Two
/// items may share one (a hash collision): that only makes them wait for each other, never
/// reorders an item's changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ItemKey(u64);

/// Where records come from: their stream, and their shard when the source names it (a
/// Lambda event does not). Shared by the records of one shard.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) stream_arn: Arc<str>,
    pub(crate) shard_id: Option<Arc<str>>,
}

impl Origin {
    pub(crate) fn new(stream_arn: Arc<str>, shard_id: Option<Arc<str>>) -> Arc<Self> {
        Arc::new(Self {
            stream_arn,
            shard_id,
        })
    }
}

impl Change {
    /// Takes an SDK record apart. A record with no sequence number or an unknown event name
    /// cannot be placed in the stream: that is an error, never a silent skip.
    pub(crate) fn from_record(origin: &Arc<Origin>, record: Record) -> Result<Self> {
        let malformed = |why: String| {
            let error = Error::new(ErrorKind::MalformedRecord, why);
            match &origin.shard_id {
                Some(shard) => error.with_shard(shard.to_string()),
                None => error,
            }
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
            origin: origin.clone(),
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

    /// Takes a page of SDK records apart, up to the first that cannot be placed in the stream
    /// (returned beside them).
    pub(crate) fn from_records(
        origin: &Arc<Origin>,
        records: Vec<Record>,
    ) -> (Vec<Self>, Option<Error>) {
        let mut changes = Vec::with_capacity(records.len());
        for record in records {
            match Self::from_record(origin, record) {
                Ok(change) => changes.push(change),
                Err(e) => return (changes, Some(e)),
            }
        }
        (changes, None)
    }

    /// The creation time in whole seconds since the epoch, if the record has one.
    pub(crate) fn created_secs(&self) -> Option<i64> {
        self.created.map(|t| t.secs())
    }

    /// Which item changed: equal for every change of one item. Each key attribute is hashed on
    /// its own and the hashes added, so the map's order does not matter.
    pub(crate) fn item_key(&self) -> ItemKey {
        let key = self.raw_keys().iter().fold(0u64, |sum, (name, value)| {
            let mut hasher = std::hash::DefaultHasher::new();
            name.hash(&mut hasher);
            match value {
                AttributeValue::S(s) => (0u8, s).hash(&mut hasher),
                AttributeValue::N(n) => (1u8, n).hash(&mut hasher),
                AttributeValue::B(b) => (2u8, b.as_ref()).hash(&mut hasher),
                // Key attributes are strings, numbers or binary; anything else is hashed by
                // its debug text, slower but still equal for equal values.
                other => (3u8, format!("{other:?}")).hash(&mut hasher),
            }
            sum.wrapping_add(hasher.finish())
        });
        ItemKey(key)
    }

    /// The creation time as the SDK has it.
    pub(crate) fn created(&self) -> Option<DateTime> {
        self.created
    }

    /// Insert, modify or remove.
    pub fn kind(&self) -> EventKind {
        self.kind
    }

    /// The record's globally unique id (`eventID`).
    pub fn event_id(&self) -> &str {
        &self.event_id
    }

    /// The shard the record was read from, when its source says: always for the events of a
    /// [`ChangeStream`](crate::ChangeStream) (see [`ChangeEvent::shard_id`]), never for the
    /// records of a Lambda event, which do not name their shard.
    pub fn shard_id(&self) -> Option<&str> {
        self.origin.shard_id.as_deref()
    }

    /// The stream the record belongs to (a Lambda record's `eventSourceARN`).
    pub fn stream_arn(&self) -> &str {
        &self.origin.stream_arn
    }

    /// The record's position in its shard.
    pub fn sequence_number(&self) -> &SequenceNumber {
        &self.sequence_number
    }

    /// The item's key attributes, raw.
    pub fn raw_keys(&self) -> &Item {
        &self.keys
    }

    /// The item after the change, raw: present for `INSERT` and `MODIFY` with the
    /// `NEW_IMAGE` and `NEW_AND_OLD_IMAGES` view types.
    pub fn raw_new_image(&self) -> Option<&Item> {
        self.new_image.as_ref()
    }

    /// The item before the change, raw: present for `MODIFY` and `REMOVE` with the
    /// `OLD_IMAGE` and `NEW_AND_OLD_IMAGES` view types.
    pub fn raw_old_image(&self) -> Option<&Item> {
        self.old_image.as_ref()
    }

    /// The keys decoded into `K`.
    ///
    /// # Errors
    /// [`ErrorKind::Decode`] when the keys do not fit `K`.
    pub fn keys<K: DeserializeOwned>(&self) -> Result<K> {
        self.decode(&self.keys, "keys")
    }

    /// The new image decoded into `T`, or `None` when the record has none.
    ///
    /// # Errors
    /// [`ErrorKind::Decode`] when the image does not fit `T`.
    pub fn new_image<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        self.new_image
            .as_ref()
            .map(|item| self.decode(item, "new image"))
            .transpose()
    }

    /// The old image decoded into `T`, or `None` when the record has none.
    ///
    /// # Errors
    /// [`ErrorKind::Decode`] when the image does not fit `T`.
    pub fn old_image<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        self.old_image
            .as_ref()
            .map(|item| self.decode(item, "old image"))
            .transpose()
    }

    fn decode<T: DeserializeOwned>(&self, item: &Item, what: &str) -> Result<T> {
        serde_dynamo::from_item(item.clone()).map_err(|e| {
            let error = Error::new(
                ErrorKind::Decode,
                format!("cannot decode the {what} of event {}", self.event_id),
            )
            .with_source(e);
            match self.shard_id() {
                Some(shard) => error.with_shard(shard),
                None => error,
            }
        })
    }

    /// When the change was made, rounded down to the second by the service: never order
    /// events by it.
    pub fn approximate_creation_time(&self) -> Option<SystemTime> {
        self.created.and_then(|t| SystemTime::try_from(t).ok())
    }

    /// The size of the record in bytes, as the service reports it.
    pub fn size_bytes(&self) -> Option<i64> {
        self.size_bytes
    }

    /// Which images the stream records.
    pub fn view_type(&self) -> Option<&StreamViewType> {
        self.view_type.as_ref()
    }

    /// Who made the change, when the service says (only TTL deletes carry it).
    pub fn user_identity(&self) -> Option<&Identity> {
        self.user_identity.as_ref()
    }

    /// The region the record was read in.
    pub fn aws_region(&self) -> Option<&str> {
        self.aws_region.as_deref()
    }

    /// Whether DynamoDB's Time to Live deleted the item (a `REMOVE` whose user identity is the
    /// service `dynamodb.amazonaws.com`), as opposed to a user's delete.
    ///
    /// On global tables, replicas in other regions do not carry the identity: there a TTL
    /// delete looks like a user's delete.
    pub fn is_ttl_delete(&self) -> bool {
        self.kind == EventKind::Remove
            && self.user_identity.as_ref().is_some_and(|id| {
                id.r#type() == Some("Service")
                    && id.principal_id() == Some("dynamodb.amazonaws.com")
            })
    }
}

impl fmt::Debug for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Change")
            .field("kind", &self.kind)
            .field("event_id", &self.event_id)
            .field("shard_id", &self.shard_id())
            .field("sequence_number", &self.sequence_number)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// One change to the table, with the checkpoint that resumes the stream right after it: what
/// a [`ChangeStream`](crate::ChangeStream) yields.
///
/// Dereferences to its [`Change`] (kind, keys, images, typed access); adds the
/// [`checkpoint`](Self::checkpoint) and what was skipped before it
/// ([`gap_before`](Self::gap_before)).
#[derive(Clone)]
pub struct ChangeEvent {
    change: Change,
    checkpoint: Checkpoint,
    gap: Option<Arc<Gap>>,
    lease: Option<Arc<LeaseToken>>,
}

impl ChangeEvent {
    pub(crate) fn new(
        change: Change,
        checkpoint: Checkpoint,
        gap: Option<Arc<Gap>>,
        lease: Option<Arc<LeaseToken>>,
    ) -> Self {
        Self {
            change,
            checkpoint,
            gap,
            lease,
        }
    }

    /// The lease the event was read under, for a stream that shares its shards through a
    /// lease table (`None` otherwise): a sink that keeps the largest epoch it saw per shard
    /// and refuses writes of smaller ones cannot be overwritten by a process that lost the
    /// shard while it was paused.
    pub fn lease(&self) -> Option<&LeaseToken> {
        self.lease.as_deref()
    }

    /// The shard the event was read from. (A [`Change`] in general may not know its shard:
    /// [`Change::shard_id`] is an `Option`; an event of a stream always does.)
    pub fn shard_id(&self) -> &str {
        // Every page of a stream is read from one named shard.
        self.change.shard_id().unwrap_or_default()
    }

    /// The change itself.
    pub fn change(&self) -> &Change {
        &self.change
    }

    /// Records of this event's shard that were lost to retention just before this event
    /// (only with [`TrimPolicy::SkipToTrimHorizon`](crate::TrimPolicy); the default policy
    /// ends the stream with [`ErrorKind::TrimmedData`] instead).
    pub fn gap_before(&self) -> Option<&Gap> {
        self.gap.as_deref()
    }

    /// The checkpoint that resumes the whole stream right after this event.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// Splits the event into its change and its checkpoint, for code that processes the one
    /// and acknowledges the other separately
    /// ([`Committer::ack_checkpoint`](crate::Committer::ack_checkpoint)).
    pub fn into_parts(self) -> (Change, Checkpoint) {
        (self.change, self.checkpoint)
    }

    /// The checkpoint alone, dropping the change.
    pub fn into_checkpoint(self) -> Checkpoint {
        self.checkpoint
    }
}

impl std::ops::Deref for ChangeEvent {
    type Target = Change;

    fn deref(&self) -> &Change {
        &self.change
    }
}

impl AsRef<Change> for ChangeEvent {
    fn as_ref(&self) -> &Change {
        &self.change
    }
}

impl From<ChangeEvent> for Change {
    fn from(event: ChangeEvent) -> Self {
        event.change
    }
}

impl fmt::Debug for ChangeEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The checkpoint holds every shard's position: too much for a debug line.
        f.debug_struct("ChangeEvent")
            .field("change", &self.change)
            .finish_non_exhaustive()
    }
}
