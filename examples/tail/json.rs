//! One event as one JSON object, in the shape `docs/tail-contract.md` fixes.

use aws_sdk_dynamodbstreams::primitives::{DateTime, DateTimeFormat};
use aws_sdk_dynamodbstreams::types::AttributeValue;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use dynamodb_stream::{ChangeEvent, Item};
use serde::Serialize;
use serde_json::{Map, Number, Value};

/// The fields of one output line, in their documented order.
#[derive(Serialize)]
pub(crate) struct Line<'a> {
    event_id: &'a str,
    kind: &'static str,
    shard_id: &'a str,
    sequence_number: &'a str,
    approximate_creation_time: Option<String>,
    keys: Value,
    new_image: Option<Value>,
    old_image: Option<Value>,
    ttl_delete: bool,
    checkpoint: String,
}

impl<'a> Line<'a> {
    pub(crate) fn new(event: &'a ChangeEvent) -> Self {
        Line {
            event_id: event.event_id(),
            kind: event.kind().as_str(),
            shard_id: event.shard_id(),
            sequence_number: event.sequence_number().as_str(),
            // The service rounds it down to the second; moto does not: print whole seconds.
            approximate_creation_time: event
                .approximate_creation_time()
                .map(|t| DateTime::from_secs(DateTime::from(t).secs()))
                .and_then(|t| t.fmt(DateTimeFormat::DateTime).ok()),
            keys: item(event.raw_keys()),
            new_image: event.raw_new_image().map(item),
            old_image: event.raw_old_image().map(item),
            ttl_delete: event.is_ttl_delete(),
            checkpoint: event.checkpoint().to_string(),
        }
    }
}

/// An item as a JSON object.
pub(crate) fn item(item: &Item) -> Value {
    Value::Object(
        item.iter()
            .map(|(k, v)| (k.clone(), value(v)))
            .collect::<Map<_, _>>(),
    )
}

/// An attribute value as plain JSON: S → string, N → number, BOOL → bool, NULL → null,
/// M → object, L → array, SS/NS/BS → arrays, B/BS → standard base64.
pub(crate) fn value(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => number(n),
        AttributeValue::B(b) => Value::String(BASE64.encode(b.as_ref())),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::M(m) => item(m),
        AttributeValue::L(l) => l.iter().map(self::value).collect(),
        AttributeValue::Ss(v) => v.iter().cloned().map(Value::String).collect(),
        AttributeValue::Ns(v) => v.iter().map(|n| number(n)).collect(),
        AttributeValue::Bs(v) => v
            .iter()
            .map(|b| Value::String(BASE64.encode(b.as_ref())))
            .collect(),
        // A type added to DynamoDB after this SDK version: nothing faithful to print.
        _ => Value::Null,
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
}
