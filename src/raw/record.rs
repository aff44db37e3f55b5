//! One record of a parsed page, shared with the page: what a fast-path `Change` holds.

use std::sync::{Arc, LazyLock};

use aws_sdk_dynamodbstreams::primitives::DateTime;
use aws_sdk_dynamodbstreams::types::{Identity, OperationType, StreamViewType};
use serde::de::DeserializeOwned;

use super::{Image, RawPage, RawRecord, RawStream};
use crate::event::Item;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What `raw_keys()` returns for a record without keys (the SDK path's empty default).
static NO_KEYS: LazyLock<Item> = LazyLock::new(Item::new);

/// What an index past the page's end would read: nothing. Never happens (handles are made
/// for the page's own records only); it keeps the accessors free of panics.
static NO_RECORD: RawRecord = RawRecord {
    event_id: None,
    event_name: None,
    aws_region: None,
    user_identity: None,
    stream: None,
};

/// Which attribute map of a record.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Part {
    Keys,
    NewImage,
    OldImage,
}

/// Record `index` of a shared page. Holding one keeps the whole page's bytes alive.
#[derive(Clone, Debug)]
pub(crate) struct PageRecord {
    page: Arc<RawPage>,
    index: usize,
}

impl PageRecord {
    /// Handles on every record of `page`, in order.
    pub(crate) fn all(page: RawPage) -> impl Iterator<Item = Self> {
        let page = Arc::new(page);
        (0..page.records.len()).map(move |index| Self {
            page: page.clone(),
            index,
        })
    }

    fn record(&self) -> &RawRecord {
        self.page.records.get(self.index).unwrap_or(&NO_RECORD)
    }

    fn stream(&self) -> Option<&RawStream> {
        self.record().stream.as_ref()
    }

    fn text(&self) -> &[u8] {
        &self.page.text
    }

    /// `eventID`, empty when absent (as the SDK path reads it).
    pub(crate) fn event_id(&self) -> &str {
        let text = self.text();
        self.record()
            .event_id
            .as_ref()
            .map_or("", |id| id.get(text))
    }

    pub(crate) fn event_name(&self) -> Option<&OperationType> {
        self.record().event_name.as_ref()
    }

    pub(crate) fn aws_region(&self) -> Option<&str> {
        let text = self.text();
        self.record().aws_region.as_ref().map(|r| r.get(text))
    }

    pub(crate) fn user_identity(&self) -> Option<&Identity> {
        self.record().user_identity.as_ref()
    }

    /// Whether the record has its `dynamodb` section.
    pub(crate) fn has_stream_record(&self) -> bool {
        self.stream().is_some()
    }

    pub(crate) fn sequence_number(&self) -> Option<&str> {
        let text = self.text();
        self.stream()?.sequence_number.as_ref().map(|s| s.get(text))
    }

    pub(crate) fn created(&self) -> Option<DateTime> {
        self.stream()?.created
    }

    pub(crate) fn size_bytes(&self) -> Option<i64> {
        self.stream()?.size_bytes
    }

    pub(crate) fn view_type(&self) -> Option<&StreamViewType> {
        self.stream()?.view_type.as_ref()
    }

    fn image(&self, part: Part) -> Option<&Image> {
        let stream = self.stream()?;
        match part {
            Part::Keys => stream.keys.as_ref(),
            Part::NewImage => stream.new_image.as_ref(),
            Part::OldImage => stream.old_image.as_ref(),
        }
    }

    /// An attribute map's JSON as the page holds it; `None` when the record has no such map.
    pub(crate) fn json(&self, part: Part) -> Option<&str> {
        let image = self.image(part)?;
        // The page was checked as UTF-8 whole, and the span starts and ends at JSON tokens.
        std::str::from_utf8(image.span.slice(self.text())).ok()
    }

    /// The keys, decoded on first use and kept.
    pub(crate) fn keys(&self) -> &Item {
        self.item(Part::Keys).unwrap_or(&NO_KEYS)
    }

    /// An attribute map, decoded on first use and kept.
    pub(crate) fn item(&self, part: Part) -> Option<&Item> {
        let image = self.image(part)?;
        let item = image.item.get_or_init(|| {
            // The page's check admitted this JSON, and it admits only what decodes; an empty
            // map rather than a panic if that ever failed.
            let decoded =
                serde_json::from_slice::<serde_dynamo::Item>(image.span.slice(self.text()));
            Box::new(decoded.map(Item::from).unwrap_or_default())
        });
        Some(item)
    }

    /// An attribute map decoded into `T` straight from its JSON, through serde_dynamo's own
    /// item type; `None` when the record has no such map (absent keys decode as an empty map,
    /// as on the SDK path).
    pub(crate) fn decode<T: DeserializeOwned>(&self, part: Part) -> Option<Result<T, BoxError>> {
        let json = match self.image(part) {
            Some(image) => image.span.slice(self.text()),
            None if matches!(part, Part::Keys) => b"{}".as_slice(),
            None => return None,
        };
        let decoded =
            parse_item(json).and_then(|item| serde_dynamo::from_item(item).map_err(BoxError::from));
        Some(decoded)
    }
}

/// An attribute map's JSON into serde_dynamo's item. Checked as UTF-8 once, whole: serde_json
/// would check every string of it one by one.
fn parse_item(json: &[u8]) -> Result<serde_dynamo::Item, BoxError> {
    Ok(serde_json::from_str(std::str::from_utf8(json)?)?)
}
