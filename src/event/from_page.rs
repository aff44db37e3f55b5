//! Changes from a page the crate parsed itself (the fast path).

use std::sync::Arc;

use super::from_sdk::place;
use super::{Change, Data, Origin};
use crate::error::Error;
use crate::raw::{PageRecord, RawPage};

impl Change {
    /// Takes a parsed page apart, up to the first record that cannot be placed in the stream
    /// (returned beside them), by the same rules as [`Change::from_records`].
    pub(crate) fn from_page(origin: &Arc<Origin>, page: RawPage) -> (Vec<Self>, Option<Error>) {
        let mut changes = Vec::with_capacity(page.len());
        for record in PageRecord::all(page) {
            let placed = place(
                origin,
                record.event_id(),
                record.has_stream_record(),
                record.sequence_number(),
                record.event_name(),
            );
            match placed {
                Ok((kind, sequence_number)) => changes.push(Self {
                    kind,
                    origin: origin.clone(),
                    sequence_number,
                    created: record.created(),
                    size_bytes: record.size_bytes(),
                    data: Data::Raw(record),
                }),
                Err(e) => return (changes, Some(e)),
            }
        }
        (changes, None)
    }
}
