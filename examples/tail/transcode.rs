//! Attribute-value JSON ("DynamoDB JSON", as `Change::new_image_json` gives it) to the plain
//! JSON of a line, read straight from the page's text: strings borrowed from it (copied only
//! when they hold escapes), no `Item`, no `String` per name or value. It prints exactly what
//! `Json<Item>` prints for the same attributes: names sorted at every depth, one entry per
//! name (the last, as the SDK keeps it), numbers by `number()`, binary as the base64 it
//! already is (the crate checked it is canonical).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap as _, Serializer};
use serde_json::value::RawValue;

use super::number;

/// An attribute map read from its JSON: entries sorted by name, one per name.
pub(crate) struct Attributes<'a>(Vec<(Str<'a>, Value<'a>)>);

impl<'a> Attributes<'a> {
    /// The map `json` holds, or `None` if it is not one in the shapes the crate admits (then
    /// the caller prints the decoded `Item` instead).
    pub(crate) fn parse(json: &'a str) -> Option<Self> {
        let mut de = serde_json::Deserializer::from_str(json);
        let attributes = Attributes::deserialize(&mut de).ok()?;
        de.end().ok()?;
        Some(attributes)
    }
}

/// One attribute value, its text as the page holds it (unescaped).
enum Value<'a> {
    S(Text<'a>),
    N(Str<'a>),
    /// Base64 text, canonical.
    B(Text<'a>),
    Bool(bool),
    Null,
    M(Attributes<'a>),
    L(Vec<Value<'a>>),
    Ss(Vec<Str<'a>>),
    Ns(Vec<Str<'a>>),
    Bs(Vec<Str<'a>>),
}

/// A JSON string: borrowed from the text unless it held escapes.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Str<'a>(Cow<'a, str>);

/// A string value to print: its JSON literal as the page holds it when that has no escapes
/// (it then holds no `"`, `\` or control character, so serde_json would print those same
/// bytes: they are copied instead, without a second scan), else its unescaped text.
enum Text<'a> {
    Literal(&'a RawValue),
    Unescaped(String),
}

impl Serialize for Text<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Text::Literal(raw) => raw.serialize(serializer),
            Text::Unescaped(text) => serializer.serialize_str(text),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <&RawValue>::deserialize(d)?;
        let literal = raw.get();
        if !literal.starts_with('"') {
            return Err(de::Error::custom("a string value that is not a string"));
        }
        if !literal.contains('\\') {
            return Ok(Text::Literal(raw));
        }
        serde_json::from_str(literal)
            .map(Text::Unescaped)
            .map_err(de::Error::custom)
    }
}

impl Serialize for Attributes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(&*name.0, value)?;
        }
        map.end()
    }
}

/// The same forms as `Json<AttributeValue>`.
impl Serialize for Value<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::S(s) | Value::B(s) => s.serialize(serializer),
            Value::N(n) => number(&n.0).serialize(serializer),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Null => serializer.serialize_unit(),
            Value::M(m) => m.serialize(serializer),
            Value::L(l) => serializer.collect_seq(l),
            Value::Ss(v) | Value::Bs(v) => serializer.collect_seq(v.iter().map(|s| &*s.0)),
            Value::Ns(v) => serializer.collect_seq(v.iter().map(|n| number(&n.0))),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor)
    }
}

struct StrVisitor;

impl<'de> Visitor<'de> for StrVisitor {
    type Value = Str<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Str<'de>, E> {
        Ok(Str(Cow::Borrowed(s)))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Str<'de>, E> {
        Ok(Str(Cow::Owned(s.to_owned())))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Attributes<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(AttributesVisitor)
    }
}

struct AttributesVisitor;

impl<'de> Visitor<'de> for AttributesVisitor {
    type Value = Attributes<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an attribute map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Attributes<'de>, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        // Stable: of a repeated name, the entries stay in the text's order, and the last wins.
        entries.sort_by(|a: &(Str, Value), b| a.0.cmp(&b.0));
        entries.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                std::mem::swap(later, kept);
            }
            same
        });
        Ok(Attributes(entries))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Value<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an attribute value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value<'de>, A::Error> {
        let Some(tag) = map.next_key::<Tag>()? else {
            return Err(de::Error::custom("an attribute value without a type"));
        };
        let value = match tag {
            Tag::S => Value::S(map.next_value()?),
            Tag::N => Value::N(map.next_value()?),
            Tag::B => Value::B(map.next_value()?),
            Tag::Bool => Value::Bool(map.next_value()?),
            Tag::Null => map.next_value::<bool>().map(|_| Value::Null)?,
            Tag::M => Value::M(map.next_value()?),
            Tag::L => Value::L(map.next_value()?),
            Tag::Ss => Value::Ss(map.next_value()?),
            Tag::Ns => Value::Ns(map.next_value()?),
            Tag::Bs => Value::Bs(map.next_value()?),
        };
        if map.next_key::<Tag>()?.is_some() {
            return Err(de::Error::custom("an attribute value with two types"));
        }
        Ok(value)
    }
}

/// The ten attribute types, by their wire names.
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
