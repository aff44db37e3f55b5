//! One change to the table, as the stream delivers it.
//!
//! A [`Change`] holds what places it in the stream (kind, shard, sequence number, creation
//! time, size) and the rest in one of two forms: decoded by the SDK (its own decoding, the
//! fallback, Lambda records), or a record of a page the crate parsed itself, whose images
//! stay raw JSON until asked for. The accessors read the same either way.

mod change_event;
mod from_page;
mod from_sdk;
mod json;

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash as _, Hasher as _};
use std::sync::Arc;
use std::time::SystemTime;

use aws_sdk_dynamodbstreams::primitives::DateTime;
use aws_sdk_dynamodbstreams::types::{AttributeValue, Identity, StreamViewType};
use serde::de::DeserializeOwned;

pub use change_event::ChangeEvent;

use crate::error::{Error, ErrorKind, Result};
use crate::raw::{PageRecord, Part};
use crate::sequence::SequenceNumber;

/// A DynamoDB item or key: attribute names to values.
pub type Item = HashMap<String, AttributeValue>;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

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
/// either; [`ChangeEvent::into_parts`] splits one into its `Change` and its [`Checkpoint`](crate::Checkpoint).
///
/// Images are raw attribute-value maps ([`Item`]); [`new_image`](Self::new_image),
/// [`old_image`](Self::old_image) and [`keys`](Self::keys) decode them into your own types
/// through `serde_dynamo`. A decode error concerns this change only.
///
/// With the default [`Decoding::Raw`](crate::Decoding::Raw), a change read by a
/// [`ChangeStream`](crate::ChangeStream) holds its images as the page's JSON: the typed
/// accessors decode straight from it, the `raw_*` ones build the [`Item`] on first use and
/// keep it. Such a change shares its page's bytes (up to about 1 MB) with the page's other
/// changes, and keeps them alive while it lives.
#[derive(Clone)]
pub struct Change {
    kind: EventKind,
    origin: Arc<Origin>,
    sequence_number: SequenceNumber,
    created: Option<DateTime>,
    size_bytes: Option<i64>,
    data: Data,
}

/// The parts of a change that only its reader looks at.
#[derive(Clone)]
enum Data {
    /// Decoded by the SDK.
    Sdk(Box<SdkData>),
    /// A record of a page the crate parsed itself.
    Raw(PageRecord),
}

#[derive(Clone)]
struct SdkData {
    event_id: String,
    keys: Item,
    new_image: Option<Item>,
    old_image: Option<Item>,
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
        match &self.data {
            Data::Sdk(sdk) => &sdk.event_id,
            Data::Raw(raw) => raw.event_id(),
        }
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
        match &self.data {
            Data::Sdk(sdk) => &sdk.keys,
            Data::Raw(raw) => raw.keys(),
        }
    }

    /// The item after the change, raw: present for `INSERT` and `MODIFY` with the
    /// `NEW_IMAGE` and `NEW_AND_OLD_IMAGES` view types.
    pub fn raw_new_image(&self) -> Option<&Item> {
        match &self.data {
            Data::Sdk(sdk) => sdk.new_image.as_ref(),
            Data::Raw(raw) => raw.item(Part::NewImage),
        }
    }

    /// The item before the change, raw: present for `MODIFY` and `REMOVE` with the
    /// `OLD_IMAGE` and `NEW_AND_OLD_IMAGES` view types.
    pub fn raw_old_image(&self) -> Option<&Item> {
        match &self.data {
            Data::Sdk(sdk) => sdk.old_image.as_ref(),
            Data::Raw(raw) => raw.item(Part::OldImage),
        }
    }

    /// The keys decoded into `K`.
    ///
    /// # Errors
    /// [`ErrorKind::Decode`] when the keys do not fit `K`.
    pub fn keys<K: DeserializeOwned>(&self) -> Result<K> {
        let decoded = match &self.data {
            Data::Sdk(sdk) => Some(decode_item(&sdk.keys)),
            Data::Raw(raw) => raw.decode(Part::Keys),
        };
        self.decoded(decoded, "keys")?
            .ok_or_else(|| self.decode_error("keys", "the record has no keys".into()))
    }

    /// The new image decoded into `T`, or `None` when the record has none.
    ///
    /// # Errors
    /// [`ErrorKind::Decode`] when the image does not fit `T`.
    pub fn new_image<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        let decoded = match &self.data {
            Data::Sdk(sdk) => sdk.new_image.as_ref().map(decode_item),
            Data::Raw(raw) => raw.decode(Part::NewImage),
        };
        self.decoded(decoded, "new image")
    }

    /// The old image decoded into `T`, or `None` when the record has none.
    ///
    /// # Errors
    /// [`ErrorKind::Decode`] when the image does not fit `T`.
    pub fn old_image<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        let decoded = match &self.data {
            Data::Sdk(sdk) => sdk.old_image.as_ref().map(decode_item),
            Data::Raw(raw) => raw.decode(Part::OldImage),
        };
        self.decoded(decoded, "old image")
    }

    fn decoded<T>(&self, decoded: Option<Result<T, BoxError>>, what: &str) -> Result<Option<T>> {
        decoded
            .transpose()
            .map_err(|source| self.decode_error(what, source))
    }

    fn decode_error(&self, what: &str, source: BoxError) -> Error {
        let error = Error::new(
            ErrorKind::Decode,
            format!("cannot decode the {what} of event {}", self.event_id()),
        )
        .with_source(source);
        match self.shard_id() {
            Some(shard) => error.with_shard(shard),
            None => error,
        }
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
        match &self.data {
            Data::Sdk(sdk) => sdk.view_type.as_ref(),
            Data::Raw(raw) => raw.view_type(),
        }
    }

    /// Who made the change, when the service says (only TTL deletes carry it).
    pub fn user_identity(&self) -> Option<&Identity> {
        match &self.data {
            Data::Sdk(sdk) => sdk.user_identity.as_ref(),
            Data::Raw(raw) => raw.user_identity(),
        }
    }

    /// The region the record was read in.
    pub fn aws_region(&self) -> Option<&str> {
        match &self.data {
            Data::Sdk(sdk) => sdk.aws_region.as_deref(),
            Data::Raw(raw) => raw.aws_region(),
        }
    }

    /// Whether DynamoDB's Time to Live deleted the item (a `REMOVE` whose user identity is the
    /// service `dynamodb.amazonaws.com`), as opposed to a user's delete.
    ///
    /// On global tables, replicas in other regions do not carry the identity: there a TTL
    /// delete looks like a user's delete.
    pub fn is_ttl_delete(&self) -> bool {
        self.kind == EventKind::Remove
            && self.user_identity().is_some_and(|id| {
                id.r#type() == Some("Service")
                    && id.principal_id() == Some("dynamodb.amazonaws.com")
            })
    }
}

/// An SDK item into `T` through serde_dynamo. serde_dynamo has no form for an attribute type
/// the SDK does not know (`AttributeValue::Unknown`, from a newer service) and panics on one,
/// so such an item is refused first.
fn decode_item<T: DeserializeOwned>(item: &Item) -> Result<T, BoxError> {
    fn known(value: &AttributeValue) -> bool {
        match value {
            AttributeValue::M(map) => map.values().all(known),
            AttributeValue::L(list) => list.iter().all(known),
            AttributeValue::S(_)
            | AttributeValue::N(_)
            | AttributeValue::B(_)
            | AttributeValue::Bool(_)
            | AttributeValue::Null(_)
            | AttributeValue::Ss(_)
            | AttributeValue::Ns(_)
            | AttributeValue::Bs(_) => true,
            _ => false,
        }
    }
    if !item.values().all(known) {
        return Err("an attribute of a type this SDK version does not know".into());
    }
    Ok(serde_dynamo::from_item(item.clone())?)
}

/// Equal when every field reads the same, whichever way each side was decoded.
impl PartialEq for Change {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.origin == other.origin
            && self.sequence_number == other.sequence_number
            && self.created == other.created
            && self.size_bytes == other.size_bytes
            && self.event_id() == other.event_id()
            && self.aws_region() == other.aws_region()
            && self.view_type() == other.view_type()
            && self.user_identity() == other.user_identity()
            && self.raw_keys() == other.raw_keys()
            && self.raw_new_image() == other.raw_new_image()
            && self.raw_old_image() == other.raw_old_image()
    }
}

impl fmt::Debug for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Change")
            .field("kind", &self.kind)
            .field("event_id", &self.event_id())
            .field("shard_id", &self.shard_id())
            .field("sequence_number", &self.sequence_number)
            .field("keys", self.raw_keys())
            .finish_non_exhaustive()
    }
}
