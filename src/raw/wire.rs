//! The page's wire form, read in one serde_json pass: the fields the SDK's deserializer reads,
//! every one optional and `null` read as absent, unknown fields skipped (but still parsed).
//! A field given twice declines the page (the SDK keeps the last). Numbers are taken as
//! integers only: a float there declines the page. Images are checked in the same pass
//! ([`check`](super::check)) and located in the page afterwards ([`locate`](super::locate)).

use std::borrow::Cow;
use std::fmt;

use aws_sdk_dynamodbstreams::primitives::DateTime;
use aws_sdk_dynamodbstreams::types::{Identity, OperationType, StreamViewType};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::check::{self, AnyStr};
use super::{Image, Part, RawRecord, RawStream, Span, Text, locate};

/// What the page holds.
pub(super) struct Wire {
    pub(super) records: Vec<RawRecord>,
    pub(super) next: Option<String>,
}

/// Fields seen so far in one object, to refuse a repeated one.
#[derive(Default)]
struct Seen(u16);

impl Seen {
    fn once<E: de::Error>(&mut self, field: u16, name: &str) -> Result<(), E> {
        let bit = 1 << field;
        if self.0 & bit != 0 {
            return Err(E::custom(format!("field {name:?} given twice")));
        }
        self.0 |= bit;
        Ok(())
    }
}

/// The page: `{"Records": [...], "NextShardIterator": "..."}`.
pub(super) struct PageSeed<'de> {
    pub(super) text: &'de str,
}

impl<'de> DeserializeSeed<'de> for PageSeed<'de> {
    type Value = Wire;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Wire, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PageSeed<'de> {
    type Value = Wire;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a GetRecords response")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Wire, A::Error> {
        let (mut seen, mut records, mut next) = (Seen::default(), None, None);
        while let Some(key) = map.next_key::<Str<'de>>()? {
            match &*key.0 {
                "Records" => {
                    seen.once(0, "Records")?;
                    records = map.next_value_seed(Nullable(RecordsSeed { text: self.text }))?;
                }
                "NextShardIterator" => {
                    seen.once(1, "NextShardIterator")?;
                    next = map
                        .next_value::<Option<Str<'de>>>()?
                        .map(|s| s.0.into_owned());
                }
                _ => drop(map.next_value::<IgnoredAny>()?),
            }
        }
        Ok(Wire {
            records: records.unwrap_or_default(),
            next,
        })
    }
}

/// `Records`: the page's records, in order.
struct RecordsSeed<'de> {
    text: &'de str,
}

impl<'de> DeserializeSeed<'de> for RecordsSeed<'de> {
    type Value = Vec<RawRecord>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RecordsSeed<'de> {
    type Value = Vec<RawRecord>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // About 600 bytes a record: one allocation for most pages.
        let mut records = Vec::with_capacity((self.text.len() / 512).min(1024));
        while let Some(record) = seq.next_element_seed(RecordSeed { text: self.text })? {
            records.push(record);
        }
        Ok(records)
    }
}

/// One record (`null` is refused, as by the SDK).
struct RecordSeed<'de> {
    text: &'de str,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'de> {
    type Value = RawRecord;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RawRecord, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'de> {
    type Value = RawRecord;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a stream record")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawRecord, A::Error> {
        let text = self.text.as_bytes();
        let mut seen = Seen::default();
        let mut record = RawRecord::default();
        while let Some(key) = map.next_key::<Str<'de>>()? {
            let name = &*key.0;
            let text_of = |s: Option<Str<'de>>| s.map(|s| Text::new(text, s));
            match name {
                "eventID" => {
                    seen.once(0, name)?;
                    record.event_id = text_of(map.next_value()?);
                }
                "eventName" => {
                    seen.once(1, name)?;
                    let value: Option<Str<'de>> = map.next_value()?;
                    record.event_name = value.map(|s| OperationType::from(&*s.0));
                }
                "awsRegion" => {
                    seen.once(2, name)?;
                    record.aws_region = text_of(map.next_value()?);
                }
                "eventSource" | "eventVersion" => {
                    seen.once(if name == "eventSource" { 3 } else { 4 }, name)?;
                    map.next_value::<Option<AnyStr>>()?;
                }
                "dynamodb" => {
                    seen.once(5, name)?;
                    record.stream =
                        map.next_value_seed(Nullable(StreamSeed { text: self.text }))?;
                }
                "userIdentity" => {
                    seen.once(6, name)?;
                    let identity: Option<WireIdentity<'de>> = map.next_value()?;
                    record.user_identity = identity.map(WireIdentity::into_sdk);
                }
                _ => drop(map.next_value::<IgnoredAny>()?),
            }
        }
        Ok(record)
    }
}

/// A record's `dynamodb` section.
struct StreamSeed<'de> {
    text: &'de str,
}

impl<'de> DeserializeSeed<'de> for StreamSeed<'de> {
    type Value = RawStream;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RawStream, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for StreamSeed<'de> {
    type Value = RawStream;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a record's dynamodb section")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawStream, A::Error> {
        let text = self.text.as_bytes();
        let mut seen = Seen::default();
        let mut stream = RawStream::default();
        // The image last read, until the next key shows where it ended.
        let mut open: Option<(Part, usize)> = None;
        while let Some(key) = map.next_key::<Str<'de>>()? {
            if let Some((part, start)) = open.take() {
                let next_key = borrowed(text, &key).map(|span| span.start as usize);
                *stream.image_mut(part) = Some(image(text, start, next_key)?);
            }
            let name = &*key.0;
            let part = match name {
                "Keys" => Some((0, Part::Keys)),
                "NewImage" => Some((1, Part::NewImage)),
                "OldImage" => Some((2, Part::OldImage)),
                _ => None,
            };
            if let Some((field, part)) = part {
                seen.once(field, name)?;
                if map.next_value_seed(Nullable(ImageSeed))?.is_some() {
                    let start = borrowed(text, &key)
                        .and_then(|key| locate::value_start(text, key.end as usize))
                        .ok_or_else(|| de::Error::custom("an image that could not be located"))?;
                    open = Some((part, start));
                }
                continue;
            }
            match name {
                "ApproximateCreationDateTime" => {
                    seen.once(3, name)?;
                    let secs: Option<i64> = map.next_value()?;
                    // Exactly the SDK's arithmetic: it reads epoch seconds as an f64.
                    stream.created = secs.map(|s| DateTime::from_secs_f64(s as f64));
                }
                "SequenceNumber" => {
                    seen.once(4, name)?;
                    let value: Option<Str<'de>> = map.next_value()?;
                    stream.sequence_number = value.map(|s| Text::new(text, s));
                }
                "SizeBytes" => {
                    seen.once(5, name)?;
                    stream.size_bytes = map.next_value()?;
                }
                "StreamViewType" => {
                    seen.once(6, name)?;
                    let value: Option<Str<'de>> = map.next_value()?;
                    stream.view_type = value.map(|s| StreamViewType::from(&*s.0));
                }
                _ => drop(map.next_value::<IgnoredAny>()?),
            }
        }
        if let Some((part, start)) = open {
            *stream.image_mut(part) = Some(image(text, start, None)?);
        }
        Ok(stream)
    }
}

/// Where a key lies in the page, if the parse borrowed it (it has no escapes).
fn borrowed(text: &[u8], key: &Str<'_>) -> Option<Span> {
    match &key.0 {
        Cow::Borrowed(name) => Span::of(text, name),
        Cow::Owned(_) => None,
    }
}

/// The image that opens at `start`: it ends just before the key that follows it (found at
/// once), or, when it is the section's last field, where its brackets close (found by a
/// scan).
fn image<E: de::Error>(text: &[u8], start: usize, next_key: Option<usize>) -> Result<Image, E> {
    next_key
        .and_then(|key| locate::end_before_key(text, key))
        .or_else(|| locate::value_end(text, start))
        .and_then(|end| Span::new(start, end))
        .map(Image::new)
        .ok_or_else(|| E::custom("an image that could not be located"))
}

/// Keys or an image: checked in place, nothing built.
struct ImageSeed;

impl<'de> DeserializeSeed<'de> for ImageSeed {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        check::image(d)
    }
}

/// `null` or what `S` reads.
struct Nullable<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Nullable<S> {
    type Value = Option<S::Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for Nullable<S> {
    type Value = Option<S::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(d).map(Some)
    }
}

/// `userIdentity`: rare (TTL deletes only), so read plainly.
#[derive(Deserialize)]
struct WireIdentity<'a> {
    #[serde(rename = "PrincipalId", borrow)]
    principal_id: Option<Str<'a>>,
    #[serde(rename = "Type", borrow)]
    kind: Option<Str<'a>>,
}

impl WireIdentity<'_> {
    fn into_sdk(self) -> Identity {
        Identity::builder()
            .set_principal_id(self.principal_id.map(|s| s.0.into_owned()))
            .set_type(self.kind.map(|s| s.0.into_owned()))
            .build()
    }
}

/// A string borrowed from the page unless it held escapes.
pub(super) struct Str<'a>(pub(super) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = Str<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(s)))
            }

            fn visit_str<E>(self, s: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(Visit)
    }
}
