//! The table layer's key handling: which attributes form the key, and how a key is routed.
//!
//! Everything here runs before the simulator's lock is taken, so that rendering items to JSON
//! does not hold up concurrent readers.

use super::Item;
use super::hash::hash_bytes;
use super::json::{item_bytes, item_size, write_value};
use bytes::Bytes;

/// The table's key schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeySchema {
    pub(crate) hash: String,
    pub(crate) range: Option<String>,
}

/// A key, rendered: `json` doubles as the table's lookup key because rendering sorts names.
#[derive(Clone, Debug)]
pub(crate) struct KeyParts {
    pub(crate) json: Bytes,
    /// Hash of the partition key alone: every item of a partition goes to the same shard, as
    /// in DynamoDB, and so every write of one item stays in one shard lineage.
    pub(crate) hash: u64,
    pub(crate) size: u64,
}

/// An item about to be written, rendered.
#[derive(Clone, Debug)]
pub(crate) struct NewItem {
    pub(crate) item: Item,
    pub(crate) json: Bytes,
    pub(crate) size: u64,
}

impl NewItem {
    pub(crate) fn new(item: Item) -> NewItem {
        NewItem {
            json: item_bytes(&item),
            size: item_size(&item),
            item,
        }
    }
}

impl KeySchema {
    /// The key attributes of `item` (other attributes are ignored).
    ///
    /// A missing key attribute is not an error here, since the write methods cannot fail:
    /// the key is made of the attributes present, and a warning is logged.
    pub(crate) fn key_of(&self, item: &Item) -> (Item, KeyParts) {
        let mut keys = Item::new();
        for name in std::iter::once(&self.hash).chain(self.range.as_ref()) {
            match item.get(name) {
                Some(v) => {
                    keys.insert(name.clone(), v.clone());
                }
                None => tracing::warn!(attribute = %name, "simulated item lacks a key attribute"),
            }
        }
        let mut partition = Vec::new();
        if let Some(v) = item.get(&self.hash) {
            write_value(&mut partition, v);
        }
        let parts = KeyParts {
            json: item_bytes(&keys),
            hash: hash_bytes(&partition),
            size: item_size(&keys),
        };
        (keys, parts)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::sim::AttributeValue;

    #[test]
    fn key_ignores_other_attributes_and_routes_by_partition() {
        let schema = KeySchema {
            hash: "pk".into(),
            range: Some("sk".into()),
        };
        let item = |sk: &str, extra: &str| {
            Item::from([
                ("pk".to_string(), AttributeValue::S("a".into())),
                ("sk".to_string(), AttributeValue::S(sk.into())),
                ("x".to_string(), AttributeValue::S(extra.into())),
            ])
        };
        let (k1, p1) = schema.key_of(&item("1", "foo"));
        let (_, p2) = schema.key_of(&item("1", "bar"));
        let (_, p3) = schema.key_of(&item("2", "foo"));
        assert_eq!(k1.len(), 2);
        assert_eq!(p1.json, p2.json);
        assert_ne!(p1.json, p3.json);
        assert_eq!(p1.hash, p3.hash);
        assert_eq!(&p1.json[..], br#"{"pk":{"S":"a"},"sk":{"S":"1"}}"#);
    }
}
