//! The attribute-value shapes the fast path accepts, checked without building anything.
//!
//! An image is kept as its raw JSON and decoded later, when asked; by then there is no way to
//! hand the page to the SDK instead. So every image is checked while the page is parsed, and
//! only shapes that the SDK's deserializer and serde_dynamo's both decode, to the same value,
//! pass: one type key per value among the ten DynamoDB types, no nulls, base64 in its
//! canonical padded form, at most [`MAX_DEPTH`] nested maps and lists. Anything else (the SDK
//! skips nulls and `__type`, keeps unknown types, accepts sloppy base64) declines the page,
//! and the SDK decodes it.

use std::fmt;

use serde::de::{
    self, Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

/// DynamoDB's own limit on nested maps and lists in an item.
const MAX_DEPTH: u32 = 32;

/// Checks that the next value is one attribute map (an image or keys) in the accepted shapes.
pub(super) fn image<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
    d.deserialize_map(MapOf { depth: 0 })
}

/// Any JSON string, unread: the SDK only needs `S`, `N` and the record's text fields to be
/// strings (it never checks a number's digits).
pub(super) struct AnyStr;

impl<'de> Deserialize<'de> for AnyStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor)
    }
}

struct StrVisitor;

impl Visitor<'_> for StrVisitor {
    type Value = AnyStr;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<AnyStr, E> {
        Ok(AnyStr)
    }
}

/// Base64 that both decoders read the same way: the SDK's decoder accepts it and it is the
/// canonical encoding of what it decodes to (padded, no stray bits).
struct Base64;

impl<'de> DeserializeSeed<'de> for Base64 {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for Base64 {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a base64 string")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<(), E> {
        use aws_smithy_types::base64;
        match base64::decode(text) {
            Ok(bytes) if base64::encode(&bytes) == text => Ok(()),
            _ => Err(E::custom("base64 that is not in canonical form")),
        }
    }
}

/// An attribute map: names to values.
#[derive(Clone, Copy)]
struct MapOf {
    depth: u32,
}

impl<'de> DeserializeSeed<'de> for MapOf {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MapOf {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an attribute map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Names may be anything; a repeated name is kept last by both decoders.
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(Value { depth: self.depth })?;
        }
        Ok(())
    }
}

/// A list of `element`s (`L`, `SS`, `NS`, `BS`).
struct ListOf<T>(T);

impl<'de, T: DeserializeSeed<'de, Value = ()> + Copy> DeserializeSeed<'de> for ListOf<T> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, T: DeserializeSeed<'de, Value = ()> + Copy> Visitor<'de> for ListOf<T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self.0)?.is_some() {}
        Ok(())
    }
}

/// One string element of a set (`SS`, `NS`).
#[derive(Clone, Copy)]
struct StrElement;

impl<'de> DeserializeSeed<'de> for StrElement {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        AnyStr::deserialize(d).map(drop)
    }
}

/// One base64 element of a binary set (`BS`).
#[derive(Clone, Copy)]
struct Base64Element;

impl<'de> DeserializeSeed<'de> for Base64Element {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        Base64.deserialize(d)
    }
}

/// One attribute value: an object with exactly one type key.
#[derive(Clone, Copy)]
struct Value {
    depth: u32,
}

impl<'de> DeserializeSeed<'de> for Value {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Value {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an attribute value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some(tag) = map.next_key::<Tag>()? else {
            return Err(de::Error::custom("an attribute value without a type"));
        };
        let inner = self.depth + 1;
        if matches!(tag, Tag::M | Tag::L) && inner > MAX_DEPTH {
            return Err(de::Error::custom("attribute values nested too deep"));
        }
        match tag {
            Tag::S | Tag::N => map.next_value::<AnyStr>().map(drop)?,
            Tag::B => map.next_value_seed(Base64)?,
            Tag::Bool | Tag::Null => map.next_value::<bool>().map(drop)?,
            Tag::M => map.next_value_seed(MapOf { depth: inner })?,
            Tag::L => map.next_value_seed(ListOf(Value { depth: inner }))?,
            Tag::Ss | Tag::Ns => map.next_value_seed(ListOf(StrElement))?,
            Tag::Bs => map.next_value_seed(ListOf(Base64Element))?,
        }
        if map.next_key::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom("an attribute value with two types"));
        }
        Ok(())
    }
}

/// The ten attribute types, by their wire names.
#[derive(Clone, Copy)]
enum Tag {
    S,
    N,
    B,
    Bool,
    Null,
    M,
    L,
    Ss,
    Ns,
    Bs,
}

impl<'de> Deserialize<'de> for Tag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_identifier(TagVisitor)
    }
}

struct TagVisitor;

impl Visitor<'_> for TagVisitor {
    type Value = Tag;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an attribute type")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Tag, E> {
        Ok(match name {
            "S" => Tag::S,
            "N" => Tag::N,
            "B" => Tag::B,
            "BOOL" => Tag::Bool,
            "NULL" => Tag::Null,
            "M" => Tag::M,
            "L" => Tag::L,
            "SS" => Tag::Ss,
            "NS" => Tag::Ns,
            "BS" => Tag::Bs,
            other => return Err(E::custom(format!("unknown attribute type {other:?}"))),
        })
    }
}
