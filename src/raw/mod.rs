//! The fast path's reading of a `GetRecords` page: one borrowed serde_json pass over the body
//! into a table of records whose text fields and images are spans of the page's bytes.
//! Images stay raw JSON (checked, see [`check`]) until someone asks for them.
//!
//! Pure: no I/O, no SDK calls. A page in any form the parse does not know to read exactly as
//! the SDK would (a duplicate key, a float where the SDK rounds, a null the SDK skips, an
//! unknown attribute type) is [`Declined`], and the caller has the SDK's deserializer decode
//! it instead: the two paths never disagree about a page, they differ only in who parses it.

mod check;
mod locate;
mod record;
#[cfg(test)]
mod tests;
mod wire;

use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;

use aws_sdk_dynamodbstreams::primitives::DateTime;
use aws_sdk_dynamodbstreams::types::{Identity, OperationType, StreamViewType};
use bytes::Bytes;
use serde::de::DeserializeSeed;

use crate::event::Item;
pub(crate) use record::{PageRecord, Part};
use wire::{PageSeed, Str};

/// A page body the fast path will not read: the SDK decodes it instead.
#[derive(Debug)]
pub(crate) struct Declined(String);

impl fmt::Display for Declined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<serde_json::Error> for Declined {
    fn from(e: serde_json::Error) -> Self {
        Self(e.to_string())
    }
}

/// One parsed page: its bytes, its records, its next iterator.
#[derive(Debug)]
pub(crate) struct RawPage {
    text: Bytes,
    records: Vec<RawRecord>,
    next: Option<String>,
}

/// Where a part of the page lies in its bytes. Pages are at most a few megabytes: offsets
/// that do not fit `u32` decline the page.
#[derive(Clone, Copy, Debug)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// The span of `part`, a string the parse borrowed from `text`.
    fn of(text: &[u8], part: &str) -> Option<Self> {
        let start = (part.as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
        let end = start.checked_add(part.len())?;
        (end <= text.len()).then_some(Self {
            start: u32::try_from(start).ok()?,
            end: u32::try_from(end).ok()?,
        })
    }

    fn new(start: usize, end: usize) -> Option<Self> {
        Some(Self {
            start: u32::try_from(start).ok()?,
            end: u32::try_from(end).ok()?,
        })
    }

    fn slice(self, text: &[u8]) -> &[u8] {
        text.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }
}

/// A string field: a span of the page, or its unescaped text when it held escapes.
#[derive(Debug)]
enum Text {
    Span(Span),
    Owned(Box<str>),
}

impl Text {
    fn new(text: &[u8], s: Str<'_>) -> Self {
        match s.0 {
            Cow::Borrowed(part) => match Span::of(text, part) {
                Some(span) => Self::Span(span),
                None => Self::Owned(part.into()),
            },
            Cow::Owned(owned) => Self::Owned(owned.into_boxed_str()),
        }
    }

    fn get<'a>(&'a self, text: &'a [u8]) -> &'a str {
        match self {
            // The parse read this span as a string, so it is UTF-8.
            Self::Span(span) => std::str::from_utf8(span.slice(text)).unwrap_or_default(),
            Self::Owned(owned) => owned,
        }
    }
}

/// Keys or an image: its JSON, decoded on first raw access.
#[derive(Debug)]
struct Image {
    span: Span,
    item: OnceLock<Box<Item>>,
}

impl Image {
    fn new(span: Span) -> Self {
        Self {
            span,
            item: OnceLock::new(),
        }
    }
}

/// One record of a page, as far as the parse read it.
#[derive(Debug, Default)]
pub(crate) struct RawRecord {
    event_id: Option<Text>,
    event_name: Option<OperationType>,
    aws_region: Option<Text>,
    user_identity: Option<Identity>,
    stream: Option<RawStream>,
}

/// A record's `dynamodb` section.
#[derive(Debug, Default)]
struct RawStream {
    created: Option<DateTime>,
    keys: Option<Image>,
    new_image: Option<Image>,
    old_image: Option<Image>,
    sequence_number: Option<Text>,
    size_bytes: Option<i64>,
    view_type: Option<StreamViewType>,
}

impl RawStream {
    fn image_mut(&mut self, part: Part) -> &mut Option<Image> {
        match part {
            Part::Keys => &mut self.keys,
            Part::NewImage => &mut self.new_image,
            Part::OldImage => &mut self.old_image,
        }
    }
}

impl RawPage {
    /// Parses a 2xx `GetRecords` body.
    ///
    /// # Errors
    /// [`Declined`] for anything but the shapes the SDK reads the same way; never for a
    /// record that is well-formed JSON but cannot be placed (no sequence number, unknown event
    /// name): that is for the caller to report, after the records before it.
    pub(crate) fn parse(text: Bytes) -> Result<Self, Declined> {
        // All of it, unknown keys included (serde_json would skip those unread, the SDK
        // refuses the page).
        let wire = {
            let json = std::str::from_utf8(&text).map_err(|e| Declined(e.to_string()))?;
            let mut de = serde_json::Deserializer::from_str(json);
            let wire = PageSeed { text: json }.deserialize(&mut de)?;
            de.end()?;
            wire
        };
        Ok(Self {
            records: wire.records,
            next: wire.next,
            text,
        })
    }

    /// The number of records.
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// The bytes the page holds: its body and its table of records.
    pub(crate) fn bytes(&self) -> usize {
        self.text.len() + self.records.capacity() * std::mem::size_of::<RawRecord>()
    }

    /// The page's `NextShardIterator`: `None` only at the shard's end.
    pub(crate) fn take_next(&mut self) -> Option<String> {
        self.next.take()
    }
}
