//! Attribute values for property tests: every type, nested maps and lists, binary and sets,
//! numbers of up to 38 digits and with exponents, unicode and escapes in values and names.

use aws_sdk_dynamodbstreams::primitives::Blob;
use dynamodb_stream::sim::AttributeValue as A;
use proptest::collection::{btree_map, btree_set, vec};
use proptest::prelude::*;

pub fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        "-?[1-9][0-9]{0,37}",
        "-?0\\.[0-9]{1,37}",
        "-?[0-9]{1,5}\\.[0-9]{1,30}",
        "-?[1-9](\\.[0-9]{1,20})?[eE][-+]?[1-9][0-9]{0,2}",
        Just("0".to_owned()),
        Just("99999999999999999999999999999999999999".to_owned()),
        Just("-18446744073709551616".to_owned()),
        Just("18446744073709551615".to_owned()),
        Just("9.9999999999999999999999999999999999999E+125".to_owned()),
        Just("1E-130".to_owned()),
    ]
}

/// Text with escapes: quotes, backslashes, slashes, controls, line separators, astral characters.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,10}",
        "[a/\"\\\\\u{0}-\u{1f}\u{7f}\u{2028}\u{e9}\u{1F600}]{0,6}"
    ]
}

pub fn bytes(min: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), min..8)
}

pub fn value() -> impl Strategy<Value = A> {
    let leaf = prop_oneof![
        text().prop_map(A::S),
        number().prop_map(A::N),
        bytes(0).prop_map(|b| A::B(Blob::new(b))),
        any::<bool>().prop_map(A::Bool),
        Just(A::Null(true)),
        btree_set(text(), 1..4).prop_map(|s| A::Ss(s.into_iter().collect())),
        btree_set(number(), 1..4).prop_map(|s| A::Ns(s.into_iter().collect())),
        btree_set(bytes(1), 1..4).prop_map(|s| A::Bs(s.into_iter().map(Blob::new).collect())),
    ];
    leaf.prop_recursive(4, 40, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(A::L),
            btree_map(text(), inner, 0..4).prop_map(|m| A::M(m.into_iter().collect())),
        ]
    })
}
