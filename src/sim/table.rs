//! The table layer's key handling: which attributes form the key, and how a key is routed.
//!
//! Everything here runs before the simulator's lock is taken, so that rendering items to JSON
//! does not hold up concurrent readers.

use super::Item;
use super::hash::hash_bytes;
use super::json::{item_bytes, item_size, value_size, write_str, write_value};
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
    /// The rendered key of `item` (other attributes are ignored).
    ///
    /// A missing key attribute is not an error here, since the write methods cannot fail:
    /// the key is made of the attributes present, and a warning is logged.
    pub(crate) fn key_of(&self, item: &Item) -> KeyParts {
        // Names in sorted order, as `write_item` renders them.
        let mut names = [Some(&self.hash), self.range.as_ref()];
        if let [Some(a), Some(b)] = names
            && b < a
        {
            names.swap(0, 1);
        }
        let mut json = Vec::with_capacity(64);
        let mut size = 0;
        let mut partition = 0..0;
        json.push(b'{');
        for name in names.into_iter().flatten() {
            let Some(value) = item.get(name) else {
                tracing::warn!(attribute = %name, "simulated item lacks a key attribute");
                continue;
            };
            if json.len() > 1 {
                json.push(b',');
            }
            write_str(&mut json, name);
            json.push(b':');
            let start = json.len();
            write_value(&mut json, value);
            if name == &self.hash {
                partition = start..json.len();
            }
            size += name.len() as u64 + value_size(value);
        }
        json.push(b'}');
        let hash = hash_bytes(json.get(partition).unwrap_or_default());
        KeyParts {
            json: Bytes::from(json),
            hash,
            size,
        }
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
        let p1 = schema.key_of(&item("1", "foo"));
        let p2 = schema.key_of(&item("1", "bar"));
        let p3 = schema.key_of(&item("2", "foo"));
        let reversed = KeySchema {
            hash: "sk".into(),
            range: Some("pk".into()),
        };
        assert_eq!(reversed.key_of(&item("1", "foo")).json, p1.json);
        assert_ne!(reversed.key_of(&item("1", "foo")).hash, p1.hash);
        assert_eq!(p1.json, p2.json);
        assert_ne!(p1.json, p3.json);
        assert_eq!(p1.hash, p3.hash);
        assert_eq!(&p1.json[..], br#"{"pk":{"S":"a"},"sk":{"S":"1"}}"#);
    }
}
