//! Changes from a page the crate parsed itself (the fast path).

use std::sync::Arc;

use super::from_sdk::place;
use super::{Change, Data, Origin};
use crate::error::Error;
use crate::raw::{PageRecord, RawPage};

impl Change {
    /// The memory `changes` of a raw page take beside the page: each change and its sequence
    /// number (their text fields and images are spans of the page).
    pub(crate) fn footprint(changes: &[Self]) -> usize {
        let each = std::mem::size_of::<Self>() + 2 * std::mem::size_of::<usize>();
        changes
            .iter()
            .map(|change| each + change.sequence_number.as_str().len())
            .sum()
    }

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
