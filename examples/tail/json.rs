//! One event as one JSON object, in the shape the contract fixes
//! (`shared/docs/tail-contract.md`, beside this repository). The `lambda` example prints the
//! same lines (it includes this file), with a `null` shard.
//!
//! Keys and images are printed from the page's attribute-value JSON when the change still
//! holds it (`Change::keys_json` and the images' `*_json`: the crate's fast path), transcoded
//! straight to plain JSON ([`transcode`]); otherwise (the SDK's decoding, a Lambda record)
//! from the decoded `Item` ([`Json`]). Both print the same bytes (`tests/tail_json.rs`).

#[path = "transcode.rs"]
pub(crate) mod transcode;

use std::cell::RefCell;

use aws_sdk_dynamodbstreams::primitives::{DateTime, DateTimeFormat};
use aws_sdk_dynamodbstreams::types::AttributeValue;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use dynamodb_stream::{Change, Item};
use serde::ser::{Serialize, SerializeMap as _, Serializer};
use serde_json::{Number, Value};

use transcode::Attributes;

/// The fields of one output line, in their documented order, except the checkpoint: its text
/// never needs escaping, so `tail` appends it as it is (`Output` in output.rs).
#[derive(serde::Serialize)]
pub(crate) struct Line<'a> {
    event_id: &'a str,
    kind: &'static str,
    /// Always known for a stream's events; `null` for a Lambda record's.
    shard_id: Option<&'a str>,
    sequence_number: &'a str,
    approximate_creation_time: Option<String>,
    keys: Image<'a>,
    new_image: Option<Image<'a>>,
    old_image: Option<Image<'a>>,
    ttl_delete: bool,
}

impl<'a> Line<'a> {
    pub(crate) fn new(event: &'a Change) -> Self {
        Line {
            event_id: event.event_id(),
            kind: event.kind().as_str(),
            shard_id: event.shard_id(),
            sequence_number: event.sequence_number().as_str(),
            // The service rounds it down to the second; moto does not: print whole seconds.
            approximate_creation_time: event
                .approximate_creation_time()
                .and_then(|t| creation_time(DateTime::from(t).secs())),
            keys: match event.keys_json().and_then(Attributes::parse) {
                Some(raw) => Image::Raw(raw),
                None => Image::Item(event.raw_keys()),
            },
            new_image: Image::new(event.new_image_json(), || event.raw_new_image()),
            old_image: Image::new(event.old_image_json(), || event.raw_old_image()),
            ttl_delete: event.is_ttl_delete(),
        }
    }
}

/// Whole seconds since the epoch as RFC 3339 (`2026-11-21T19:03:46Z`). The events of a page
/// mostly share their second, so the last text is kept (per thread) and copied: formatting
/// each one costs more than transcoding its keys.
fn creation_time(secs: i64) -> Option<String> {
    thread_local! {
        static LAST: RefCell<Option<(i64, String)>> = const { RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| {
        if let Some((kept, text)) = last.as_ref()
            && *kept == secs
        {
            return Some(text.clone());
        }
        let text = DateTime::from_secs(secs)
            .fmt(DateTimeFormat::DateTime)
            .ok()?;
        *last = Some((secs, text.clone()));
        Some(text)
    })
}

/// Keys or an image to print: read from the page's JSON, or the decoded item.
pub(crate) enum Image<'a> {
    Raw(Attributes<'a>),
    Item(&'a Item),
}

impl<'a> Image<'a> {
    /// From `json` when the change holds it and it reads (it always does: the crate checked
    /// it), else from the item, decoded only then.
    fn new(json: Option<&'a str>, item: impl FnOnce() -> Option<&'a Item>) -> Option<Self> {
        match json.and_then(Attributes::parse) {
            Some(raw) => Some(Image::Raw(raw)),
            None => item().map(Image::Item),
        }
    }
}

impl Serialize for Image<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Image::Raw(raw) => raw.serialize(serializer),
            Image::Item(item) => Json(*item).serialize(serializer),
        }
    }
}

/// An item or attribute value, serialized as plain JSON straight from the SDK's types.
pub(crate) struct Json<'a, T>(pub(crate) &'a T);

/// An item as a JSON object, its attributes ordered by name.
impl Serialize for Json<'_, Item> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut names: Vec<(&String, &AttributeValue)> = self.0.iter().collect();
        names.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut map = serializer.serialize_map(Some(names.len()))?;
        for (name, value) in names {
            map.serialize_entry(name, &Json(value))?;
        }
        map.end()
    }
}

/// An attribute value as plain JSON: S → string, N → number, BOOL → bool, NULL → null,
/// M → object, L → array, SS/NS/BS → arrays, B/BS → standard base64.
impl Serialize for Json<'_, AttributeValue> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            AttributeValue::S(s) => serializer.serialize_str(s),
            AttributeValue::N(n) => number(n).serialize(serializer),
            AttributeValue::B(b) => serializer.serialize_str(&BASE64.encode(b.as_ref())),
            AttributeValue::Bool(b) => serializer.serialize_bool(*b),
            AttributeValue::Null(_) => serializer.serialize_unit(),
            AttributeValue::M(m) => Json(m).serialize(serializer),
            AttributeValue::L(l) => serializer.collect_seq(l.iter().map(Json)),
            AttributeValue::Ss(v) => serializer.collect_seq(v),
            AttributeValue::Ns(v) => serializer.collect_seq(v.iter().map(|n| number(n))),
            AttributeValue::Bs(v) => {
                serializer.collect_seq(v.iter().map(|b| BASE64.encode(b.as_ref())))
            }
            // A type added to DynamoDB after this SDK version: nothing faithful to print.
            _ => serializer.serialize_unit(),
        }
    }
}

/// A DynamoDB number (up to 38 significant digits) as a JSON number when that is exact:
/// integers that fit `i64`/`u64`, and other values with at most 15 significant digits (which
/// an `f64` always holds exactly enough to print back the same decimal). Anything else stays
/// the service's decimal string, so that no digit is ever lost.
pub(crate) fn number(text: &str) -> Value {
    if let Ok(i) = text.parse::<i64>() {
        return Value::Number(i.into());
    }
    if let Ok(u) = text.parse::<u64>() {
        return Value::Number(u.into());
    }
    let mantissa = text.split(['e', 'E']).next().unwrap_or_default();
    let digits = mantissa.trim_start_matches(['-', '+']).replace('.', "");
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    match text.parse::<f64>().ok().and_then(Number::from_f64) {
        Some(n) if significant <= 15 => Value::Number(n),
        _ => Value::String(text.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creation_times_are_whole_seconds_in_rfc3339() {
        assert_eq!(creation_time(0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(creation_time(0).as_deref(), Some("1970-01-01T00:00:00Z"));
        let t = 1_795_000_000;
        assert_eq!(creation_time(t).as_deref(), Some("2026-11-18T11:06:40Z"));
        assert_eq!(creation_time(t).as_deref(), Some("2026-11-18T11:06:40Z"));
        assert_eq!(
            creation_time(t + 1).as_deref(),
            Some("2026-11-18T11:06:41Z")
        );
    }

    #[test]
    fn numbers_are_exact_or_strings() {
        assert_eq!(number("42"), serde_json::json!(42));
        assert_eq!(number("-7"), serde_json::json!(-7));
        assert_eq!(number("18446744073709551615"), serde_json::json!(u64::MAX));
        assert_eq!(number("-12.5"), serde_json::json!(-12.5));
        assert_eq!(number("0.1"), serde_json::json!(0.1));
        assert_eq!(number("1.5E3"), serde_json::json!(1500.0));
        let wide = "123456789012345678901234567890";
        assert_eq!(number(wide), Value::String(wide.into()));
        assert_eq!(
            number("0.1234567890123456"),
            Value::String("0.1234567890123456".into())
        );
        assert_eq!(number("1E400"), Value::String("1E400".into()));
    }

    #[test]
    fn every_attribute_type_prints_as_plain_json() {
        use aws_sdk_dynamodbstreams::primitives::Blob;
        let s = |v: &str| AttributeValue::S(v.into());
        let nested = Item::from([("b".to_owned(), s("x")), ("a".to_owned(), s("y"))]);
        let item = Item::from([
            ("s".to_owned(), s("caf\u{e9} \"q\"\n")),
            ("n".to_owned(), AttributeValue::N("-12.5".into())),
            (
                "wide".to_owned(),
                AttributeValue::N("123456789012345678901234567890".into()),
            ),
            (
                "bin".to_owned(),
                AttributeValue::B(Blob::new(b"hi".to_vec())),
            ),
            ("yes".to_owned(), AttributeValue::Bool(true)),
            ("nil".to_owned(), AttributeValue::Null(true)),
            ("m".to_owned(), AttributeValue::M(nested)),
            (
                "l".to_owned(),
                AttributeValue::L(vec![s("a"), AttributeValue::N("1".into())]),
            ),
            (
                "ss".to_owned(),
                AttributeValue::Ss(vec!["a".into(), "b".into()]),
            ),
            (
                "ns".to_owned(),
                AttributeValue::Ns(vec!["1".into(), "2.5".into()]),
            ),
            (
                "bs".to_owned(),
                AttributeValue::Bs(vec![Blob::new(b"hi".to_vec())]),
            ),
        ]);
        let text = serde_json::to_string(&Json(&item)).unwrap();
        // Names in order, at every depth.
        assert!(
            text.starts_with(r#"{"bin":"aGk=","bs":["aGk="],"l":["a",1],"m":{"a":"y","b":"x"}"#),
            "{text}"
        );
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            back,
            serde_json::json!({
                "s": "caf\u{e9} \"q\"\n", "n": -12.5, "wide": "123456789012345678901234567890",
                "bin": "aGk=", "yes": true, "nil": null, "m": {"a": "y", "b": "x"},
                "l": ["a", 1], "ss": ["a", "b"], "ns": [1, 2.5], "bs": ["aGk="],
            })
        );
    }
}
