//! DynamoDB JSON for items and stream records, written once per record at append time.
//!
//! GetRecords responses are then built by concatenating these pre-rendered records, which is
//! what keeps the simulator fast enough for the crate's throughput benchmarks.

use super::types::RecordKind;
use super::{AttributeValue, Item};
use aws_sdk_dynamodbstreams::types::StreamViewType;
use bytes::Bytes;

/// Writes `s` as a JSON string literal.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    if !bytes.iter().any(|&b| b == b'"' || b == b'\\' || b < 0x20) {
        // The common case: nothing to escape, one copy.
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        match escape {
            Some(e) => out.extend_from_slice(e),
            None => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Writes a JSON array of strings.
fn write_str_list<'a>(out: &mut Vec<u8>, items: impl Iterator<Item = &'a str>) {
    out.push(b'[');
    for (i, s) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, s);
    }
    out.push(b']');
}

/// Writes one attribute value in DynamoDB JSON (`{"S":"x"}`, `{"N":"1"}`, ...).
pub(crate) fn write_value(out: &mut Vec<u8>, value: &AttributeValue) {
    use aws_smithy_types::base64;
    match value {
        AttributeValue::S(s) => {
            out.extend_from_slice(b"{\"S\":");
            write_str(out, s);
        }
        AttributeValue::N(n) => {
            out.extend_from_slice(b"{\"N\":");
            write_str(out, n);
        }
        AttributeValue::B(b) => {
            out.extend_from_slice(b"{\"B\":");
            write_str(out, &base64::encode(b.as_ref()));
        }
        AttributeValue::Bool(b) => {
            out.extend_from_slice(if *b {
                b"{\"BOOL\":true"
            } else {
                b"{\"BOOL\":false"
            });
        }
        AttributeValue::M(m) => {
            out.extend_from_slice(b"{\"M\":");
            write_item(out, m);
        }
        AttributeValue::L(l) => {
            out.extend_from_slice(b"{\"L\":[");
            for (i, v) in l.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, v);
            }
            out.push(b']');
        }
        AttributeValue::Ss(ss) => {
            out.extend_from_slice(b"{\"SS\":");
            write_str_list(out, ss.iter().map(String::as_str));
        }
        AttributeValue::Ns(ns) => {
            out.extend_from_slice(b"{\"NS\":");
            write_str_list(out, ns.iter().map(String::as_str));
        }
        AttributeValue::Bs(bs) => {
            out.extend_from_slice(b"{\"BS\":");
            let encoded: Vec<String> = bs.iter().map(|b| base64::encode(b.as_ref())).collect();
            write_str_list(out, encoded.iter().map(String::as_str));
        }
        // `Null(false)` is not valid DynamoDB, and `Unknown` cannot be built by users: both
        // render as NULL rather than fail.
        _ => out.extend_from_slice(b"{\"NULL\":true"),
    }
    out.push(b'}');
}

/// Writes an item (or any attribute map) with its names sorted, so that equal items render
/// to equal bytes: the table layer uses the rendered key as its lookup key.
pub(crate) fn write_item(out: &mut Vec<u8>, item: &Item) {
    let mut names: Vec<&String> = item.keys().collect();
    names.sort_unstable();
    out.push(b'{');
    for (i, name) in names.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, name);
        out.push(b':');
        if let Some(v) = item.get(name) {
            write_value(out, v);
        }
    }
    out.push(b'}');
}

/// An item rendered to DynamoDB JSON.
pub(crate) fn item_bytes(item: &Item) -> Bytes {
    // Room for the values plus per-attribute syntax, to avoid regrowing the buffer.
    let mut out = Vec::with_capacity(item_size(item) as usize + 16 * item.len() + 2);
    write_item(&mut out, item);
    Bytes::from(out)
}

/// DynamoDB's item-size accounting (attribute names plus values), used for `SizeBytes`.
pub(crate) fn item_size(item: &Item) -> u64 {
    item.iter()
        .map(|(k, v)| k.len() as u64 + value_size(v))
        .sum()
}

pub(crate) fn value_size(v: &AttributeValue) -> u64 {
    // Numbers take about one byte per two significant digits, plus one.
    let number = |n: &str| (n.bytes().filter(u8::is_ascii_digit).count() as u64).div_ceil(2) + 1;
    match v {
        AttributeValue::S(s) => s.len() as u64,
        AttributeValue::N(n) => number(n),
        AttributeValue::B(b) => b.as_ref().len() as u64,
        AttributeValue::Ss(ss) => ss.iter().map(|s| s.len() as u64).sum(),
        AttributeValue::Ns(ns) => ns.iter().map(|n| number(n)).sum(),
        AttributeValue::Bs(bs) => bs.iter().map(|b| b.as_ref().len() as u64).sum(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, v)| k.len() as u64 + value_size(v) + 1)
                .sum::<u64>()
        }
        AttributeValue::L(l) => 3 + l.iter().map(|v| value_size(v) + 1).sum::<u64>(),
        _ => 1,
    }
}

/// Appends the decimal form of `n` without allocating.
fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// A change with its parts already rendered, waiting for a sequence number.
#[derive(Clone, Debug)]
pub(crate) struct EncodedChange {
    pub(crate) kind: RecordKind,
    pub(crate) keys: Bytes,
    pub(crate) new_image: Option<Bytes>,
    pub(crate) old_image: Option<Bytes>,
    pub(crate) ttl: bool,
    pub(crate) created_secs: u64,
    pub(crate) size_bytes: u64,
}

/// Everything about the stream a rendered record repeats.
#[derive(Clone, Debug)]
pub(crate) struct RecordContext {
    pub(crate) region: &'static str,
    pub(crate) view: StreamViewType,
}

/// Renders the full stream record, as GetRecords returns it.
pub(crate) fn render_record(
    change: &EncodedChange,
    ctx: &RecordContext,
    seq: &str,
    event_id: &str,
) -> Bytes {
    let (with_new, with_old) = match ctx.view {
        StreamViewType::KeysOnly => (false, false),
        StreamViewType::NewImage => (true, false),
        StreamViewType::OldImage => (false, true),
        _ => (true, true),
    };
    let new_image = change.new_image.as_ref().filter(|_| with_new);
    let old_image = change.old_image.as_ref().filter(|_| with_old);
    let mut out = Vec::with_capacity(
        320 + change.keys.len()
            + new_image.map_or(0, |b| b.len())
            + old_image.map_or(0, |b| b.len()),
    );
    out.extend_from_slice(b"{\"awsRegion\":");
    write_str(&mut out, ctx.region);
    out.extend_from_slice(b",\"dynamodb\":{\"ApproximateCreationDateTime\":");
    push_u64(&mut out, change.created_secs);
    out.extend_from_slice(b",\"Keys\":");
    out.extend_from_slice(&change.keys);
    if let Some(img) = new_image {
        out.extend_from_slice(b",\"NewImage\":");
        out.extend_from_slice(img);
    }
    if let Some(img) = old_image {
        out.extend_from_slice(b",\"OldImage\":");
        out.extend_from_slice(img);
    }
    out.extend_from_slice(b",\"SequenceNumber\":\"");
    out.extend_from_slice(seq.as_bytes());
    out.extend_from_slice(b"\",\"SizeBytes\":");
    push_u64(&mut out, change.size_bytes);
    out.extend_from_slice(b",\"StreamViewType\":");
    write_str(&mut out, ctx.view.as_str());
    out.extend_from_slice(b"},\"eventID\":\"");
    out.extend_from_slice(event_id.as_bytes());
    out.extend_from_slice(b"\",\"eventName\":\"");
    out.extend_from_slice(change.kind.event_name().as_bytes());
    out.extend_from_slice(b"\",\"eventSource\":\"aws:dynamodb\",\"eventVersion\":\"1.1\"");
    if change.ttl {
        out.extend_from_slice(
            b",\"userIdentity\":{\"PrincipalId\":\"dynamodb.amazonaws.com\",\"Type\":\"Service\"}",
        );
    }
    out.push(b'}');
    Bytes::from(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn render(v: &AttributeValue) -> String {
        let mut out = Vec::new();
        write_value(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn values_render_as_dynamodb_json() {
        assert_eq!(
            render(&AttributeValue::S("a\"b\\\n\u{1}é".into())),
            r#"{"S":"a\"b\\\n\u0001é"}"#
        );
        assert_eq!(render(&AttributeValue::N("12".into())), r#"{"N":"12"}"#);
        assert_eq!(
            render(&AttributeValue::B(aws_smithy_types::Blob::new(
                b"hi".to_vec()
            ))),
            r#"{"B":"aGk="}"#
        );
        assert_eq!(render(&AttributeValue::Bool(false)), r#"{"BOOL":false}"#);
        assert_eq!(render(&AttributeValue::Null(true)), r#"{"NULL":true}"#);
        let m = Item::from([
            ("z".to_string(), AttributeValue::Ss(vec!["x".into()])),
            (
                "a".to_string(),
                AttributeValue::L(vec![AttributeValue::Ns(vec!["1".into()])]),
            ),
        ]);
        assert_eq!(
            render(&AttributeValue::M(m)),
            r#"{"M":{"a":{"L":[{"NS":["1"]}]},"z":{"SS":["x"]}}}"#
        );
        let rendered = render(&AttributeValue::S("\u{7f}\t".into()));
        let parsed: serde_json::Value = serde_json::from_str(&rendered).unwrap();
        assert_eq!(parsed["S"], "\u{7f}\t");
    }
}
