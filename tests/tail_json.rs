//! `tail`'s lines from the page's JSON (the fast path: `Change::keys_json` and the images'
//! JSON, transcoded without building an `Item`) are byte for byte the lines it prints from
//! decoded items (the SDK's decoding, Lambda records): for generated attribute maps of every
//! type (nested maps and lists, binary and sets, numbers of up to 38 digits and with
//! exponents, unicode and escapes in values and names, empty maps and lists), served by the
//! simulator and read both ways; and for the same maps written with every escape JSON allows,
//! whitespace and repeated names, which the service may send and the simulator does not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

#[path = "../examples/tail/json.rs"]
#[allow(dead_code)]
mod json;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use aws_sdk_dynamodbstreams::primitives::Blob;
use aws_smithy_types::base64;
use dynamodb_stream::sim::{AttributeValue as A, Item, Simulator, StreamViewType};
use dynamodb_stream::{ChangeEvent, ChangeStream, Decoding, Readers, StartPosition};
use futures::StreamExt;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use support::attrs::{text, value};
use support::sim::paused_runtime;

use json::transcode::Attributes;
use json::{Json, Line};

fn attributes() -> impl Strategy<Value = BTreeMap<String, A>> {
    btree_map(text(), value(), 0..6)
}

fn view() -> impl Strategy<Value = StreamViewType> {
    prop::sample::select(vec![
        StreamViewType::KeysOnly,
        StreamViewType::NewImage,
        StreamViewType::OldImage,
        StreamViewType::NewAndOldImages,
    ])
}

/// Every event of the simulator's stream, read to its current end.
async fn read(sim: &Simulator, decoding: Decoding) -> Vec<ChangeEvent> {
    let mut stream = ChangeStream::builder(sim.client(), sim.stream_arn())
        .start(StartPosition::TrimHorizon)
        .until_caught_up(true)
        .readers(Readers::Inline)
        .page_size(3)
        .decoding(decoding)
        .build()
        .unwrap();
    let mut events = Vec::new();
    while let Some(event) = stream.next().await {
        events.push(event.unwrap());
    }
    events
}

fn line(event: &ChangeEvent) -> String {
    serde_json::to_string(&Line::new(event.change())).unwrap()
}

/// How the test writes the service's JSON: each character as it is or escaped (`\uXXXX`, in
/// surrogate pairs past the BMP, or the short escapes), whitespace between tokens.
#[derive(Clone, Copy, Debug)]
struct Style {
    escape_all: bool,
    spaces: bool,
    /// Write each map's entries twice, first with a decoy value: the last one counts.
    repeat: bool,
}

fn style() -> impl Strategy<Value = Style> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(escape_all, spaces, repeat)| Style {
        escape_all,
        spaces,
        repeat,
    })
}

impl Style {
    fn space(self, out: &mut String) {
        if self.spaces {
            out.push_str(" \n\t ");
        }
    }

    fn str(self, out: &mut String, s: &str) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '/' if self.escape_all => out.push_str("\\/"),
                '\n' if self.escape_all => out.push_str("\\n"),
                c if self.escape_all || u32::from(c) < 0x20 => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        write!(out, "\\u{unit:04X}").unwrap();
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }

    fn list<'a>(self, out: &mut String, items: impl Iterator<Item = &'a str>) {
        out.push('[');
        for (i, s) in items.enumerate() {
            if i > 0 {
                out.push(',');
            }
            self.space(out);
            self.str(out, s);
        }
        out.push(']');
    }

    fn value(self, out: &mut String, value: &A) {
        let tag = |out: &mut String, tag: &str| {
            out.push('{');
            self.space(out);
            self.str(out, tag);
            out.push(':');
            self.space(out);
        };
        match value {
            A::S(s) => {
                tag(out, "S");
                self.str(out, s);
            }
            A::N(n) => {
                tag(out, "N");
                self.str(out, n);
            }
            A::B(b) => {
                tag(out, "B");
                self.str(out, &base64::encode(b));
            }
            A::Bool(b) => {
                tag(out, "BOOL");
                out.push_str(if *b { "true" } else { "false" });
            }
            A::Null(_) => {
                tag(out, "NULL");
                out.push_str("true");
            }
            A::M(m) => {
                tag(out, "M");
                self.map(out, m.iter());
            }
            A::L(l) => {
                tag(out, "L");
                out.push('[');
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.value(out, v);
                }
                out.push(']');
            }
            A::Ss(v) | A::Ns(v) => {
                tag(
                    out,
                    if matches!(value, A::Ss(_)) {
                        "SS"
                    } else {
                        "NS"
                    },
                );
                self.list(out, v.iter().map(String::as_str));
            }
            A::Bs(v) => {
                let texts: Vec<String> = v.iter().map(base64::encode).collect();
                tag(out, "BS");
                self.list(out, texts.iter().map(String::as_str));
            }
            other => panic!("not generated: {other:?}"),
        }
        self.space(out);
        out.push('}');
    }

    fn map<'a>(self, out: &mut String, entries: impl Iterator<Item = (&'a String, &'a A)>) {
        out.push('{');
        for (i, (name, value)) in entries.enumerate() {
            if i > 0 {
                out.push(',');
            }
            if self.repeat {
                self.str(out, name);
                out.push_str(":{\"NULL\":true},");
            }
            self.space(out);
            self.str(out, name);
            out.push(':');
            self.value(out, value);
        }
        self.space(out);
        out.push('}');
    }
}

fn plain(item: &Item) -> String {
    serde_json::to_string(&Json(item)).unwrap()
}

#[test]
fn every_type_and_form_transcodes_as_the_item_prints() {
    let item: Item = [
        ("s", A::S("caf\u{e9} \"q\"\n\u{1F600}/".into())),
        ("n", A::N("-12.5".into())),
        ("e", A::N("1.5E3".into())),
        (
            "wide",
            A::N("12345678901234567890123456789012345678".into()),
        ),
        ("big", A::N("18446744073709551615".into())),
        ("bin", A::B(Blob::new(b"\xff\xfe?>".to_vec()))),
        ("yes", A::Bool(true)),
        ("nil", A::Null(true)),
        ("m", A::M(Item::new())),
        ("l", A::L(vec![])),
        ("ss", A::Ss(vec!["b".into(), "a".into()])),
        ("ns", A::Ns(vec!["1".into(), "2.5".into(), "1E400".into()])),
        ("bs", A::Bs(vec![Blob::new(b"hi".to_vec())])),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_owned(), v))
    .collect();
    let mut sorted: Vec<_> = item.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    for style in [
        Style {
            escape_all: false,
            spaces: false,
            repeat: false,
        },
        Style {
            escape_all: true,
            spaces: true,
            repeat: true,
        },
    ] {
        let mut raw = String::new();
        style.map(&mut raw, sorted.iter().rev().copied());
        let transcoded = Attributes::parse(&raw).expect("reads");
        assert_eq!(
            serde_json::to_string(&transcoded).unwrap(),
            plain(&item),
            "{raw}"
        );
    }
    // Not the shapes the crate admits: the caller prints the item instead.
    for bad in [
        r#"{"a":{}}"#,
        r#"{"a":{"S":"x","N":"1"}}"#,
        r#"{"a":{"X":"1"}}"#,
        "[]",
        "{} x",
    ] {
        assert!(Attributes::parse(bad).is_none(), "{bad}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The service's JSON in any form JSON allows transcodes to what the item prints.
    #[test]
    fn any_form_of_the_json_transcodes_as_the_item_prints(
        attributes in attributes(),
        style in style(),
    ) {
        let item: Item = attributes.clone().into_iter().collect();
        let mut raw = String::new();
        style.map(&mut raw, attributes.iter().rev());
        let transcoded = Attributes::parse(&raw);
        prop_assert!(transcoded.is_some(), "{}", raw);
        prop_assert_eq!(serde_json::to_string(&transcoded.unwrap()).unwrap(), plain(&item));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Through the simulator and a `ChangeStream`: the fast path's lines (transcoded JSON) and
    /// the SDK decoding's lines (items) are the same bytes.
    #[test]
    fn the_fast_path_prints_what_the_sdk_decoding_prints(
        puts in vec((0..4_u8, attributes()), 1..12),
        deletes in vec(0..4_u8, 0..3),
        view in view(),
    ) {
        paused_runtime().block_on(async {
            let sim = Simulator::builder().view_type(view).describe_rate_limit(false).build();
            let key = |k: u8| Item::from([("pk".to_owned(), A::S(format!("k{k}\u{e9}\"")))]);
            for (k, attributes) in &puts {
                let mut item = key(*k);
                item.extend(attributes.iter().map(|(n, v)| (format!("a{n}"), v.clone())));
                sim.put_item(item);
            }
            for k in &deletes {
                drop(sim.delete_item(key(*k)));
            }
            let sdk = read(&sim, Decoding::Sdk).await;
            let raw = read(&sim, Decoding::Raw).await;
            prop_assert_eq!(raw.len(), sdk.len());
            for (r, s) in raw.iter().zip(&sdk) {
                // The fast path printed from the JSON, the SDK path from items.
                prop_assert!(r.keys_json().is_some() && s.keys_json().is_none());
                prop_assert_eq!(r.new_image_json().is_some(), s.raw_new_image().is_some());
                prop_assert_eq!(r.old_image_json().is_some(), s.raw_old_image().is_some());
                prop_assert!(s.new_image_json().is_none() && s.old_image_json().is_none());
                prop_assert_eq!(line(r), line(s));
            }
            Ok(())
        })?;
    }
}
