//! A change's keys and images as the service's attribute-value JSON, when the change still
//! holds it (the fast path): for code that re-encodes images without building an [`Item`](crate::Item).

use super::{Change, Data};
use crate::raw::Part;

impl Change {
    /// The keys as the service sent them: attribute-value JSON ("DynamoDB JSON",
    /// `{"pk":{"S":"k1"}}`), a slice of the page's bytes, when this change was read from a page
    /// the crate parsed itself.
    ///
    /// That is every change of a [`ChangeStream`](crate::ChangeStream) with the default
    /// [`Decoding::Raw`](crate::Decoding::Raw), except for the rare page the fast path hands to
    /// the SDK's deserializer. It is `None` for changes the SDK decoded
    /// ([`Decoding::Sdk`](crate::Decoding::Sdk), such a page, the records of a Lambda event)
    /// and for a record without keys: then [`raw_keys`](Self::raw_keys) has them (empty, for a
    /// record without keys).
    ///
    /// The text is the page's own: JSON escapes and insignificant whitespace as sent, names in
    /// the service's order. It was checked when the page was read: it is one JSON object whose
    /// values each hold exactly one of the ten type keys (`S`, `N`, `B`, `BOOL`, `NULL`, `M`,
    /// `L`, `SS`, `NS`, `BS`), binary values in canonical padded base64, maps and lists nested
    /// at most 32 deep. A name may appear twice in one map: the last one counts, as in
    /// [`raw_keys`](Self::raw_keys). It decodes to exactly what the `raw_*` accessors return.
    ///
    /// ```
    /// # fn print(change: &dynamodb_stream::Change) {
    /// match change.keys_json() {
    ///     Some(json) => println!("{json}"),
    ///     None => println!("{:?}", change.raw_keys()),
    /// }
    /// # }
    /// ```
    pub fn keys_json(&self) -> Option<&str> {
        self.json(Part::Keys)
    }

    /// The new image as the service sent it, in attribute-value JSON, when this change was read
    /// from a page the crate parsed itself; `None` when the SDK decoded the change or the
    /// record has no new image: then [`raw_new_image`](Self::raw_new_image) says which. See
    /// [`keys_json`](Self::keys_json) for when the JSON is available and what it holds.
    pub fn new_image_json(&self) -> Option<&str> {
        self.json(Part::NewImage)
    }

    /// The old image as the service sent it, in attribute-value JSON, when this change was read
    /// from a page the crate parsed itself; `None` when the SDK decoded the change or the
    /// record has no old image: then [`raw_old_image`](Self::raw_old_image) says which. See
    /// [`keys_json`](Self::keys_json) for when the JSON is available and what it holds.
    pub fn old_image_json(&self) -> Option<&str> {
        self.json(Part::OldImage)
    }

    fn json(&self, part: Part) -> Option<&str> {
        match &self.data {
            Data::Sdk(_) => None,
            Data::Raw(raw) => raw.json(part),
        }
    }
}
