//! Changes from records the SDK decoded: the stream's SDK path and fallback, and Lambda.

use std::sync::Arc;

use aws_sdk_dynamodbstreams::types::{OperationType, Record, StreamRecord};

use super::{Change, Data, EventKind, Origin, SdkData};
use crate::error::{Error, ErrorKind, Result};
use crate::sequence::SequenceNumber;

/// What a record needs to be placed in the stream, checked the same way for both decodings:
/// its `dynamodb` section, a valid sequence number and a known event name. A record without
/// them is an error, never a silent skip.
pub(super) fn place(
    origin: &Origin,
    event_id: &str,
    has_stream_record: bool,
    sequence_number: Option<&str>,
    event_name: Option<&OperationType>,
) -> Result<(EventKind, SequenceNumber)> {
    let malformed = |why: String| {
        let error = Error::new(ErrorKind::MalformedRecord, why);
        match &origin.shard_id {
            Some(shard) => error.with_shard(shard.to_string()),
            None => error,
        }
    };
    if !has_stream_record {
        return Err(malformed(format!(
            "record {event_id:?} has no `dynamodb` section"
        )));
    }
    let sequence_number = sequence_number
        .ok_or_else(|| malformed(format!("record {event_id:?} has no sequence number")))
        .and_then(|s| SequenceNumber::new(s).map_err(|e| malformed(e.to_string())))?;
    let kind = match event_name {
        Some(OperationType::Insert) => EventKind::Insert,
        Some(OperationType::Modify) => EventKind::Modify,
        Some(OperationType::Remove) => EventKind::Remove,
        other => {
            return Err(malformed(format!(
                "record {event_id:?} has an unknown event name {:?}",
                other.map(OperationType::as_str)
            )));
        }
    };
    Ok((kind, sequence_number))
}

impl Change {
    /// Takes an SDK record apart. A record with no sequence number or an unknown event name
    /// cannot be placed in the stream: that is an error, never a silent skip.
    pub(crate) fn from_record(origin: &Arc<Origin>, record: Record) -> Result<Self> {
        let event_id = record.event_id.unwrap_or_default();
        let stream = record.dynamodb;
        let (kind, sequence_number) = place(
            origin,
            &event_id,
            stream.is_some(),
            stream.as_ref().and_then(|s| s.sequence_number.as_deref()),
            record.event_name.as_ref(),
        )?;
        // `place` refused a record without its section.
        let stream = stream.unwrap_or_else(|| StreamRecord::builder().build());
        Ok(Self {
            kind,
            origin: origin.clone(),
            sequence_number,
            created: stream.approximate_creation_date_time,
            size_bytes: stream.size_bytes,
            data: Data::Sdk(Box::new(SdkData {
                event_id,
                keys: stream.keys.unwrap_or_default(),
                new_image: stream.new_image,
                old_image: stream.old_image,
                view_type: stream.stream_view_type,
                user_identity: record.user_identity,
                aws_region: record.aws_region,
            })),
        })
    }

    /// Takes a page of SDK records apart, up to the first that cannot be placed in the stream
    /// (returned beside them).
    pub(crate) fn from_records(
        origin: &Arc<Origin>,
        records: Vec<Record>,
    ) -> (Vec<Self>, Option<Error>) {
        let mut changes = Vec::with_capacity(records.len());
        for record in records {
            match Self::from_record(origin, record) {
                Ok(change) => changes.push(change),
                Err(e) => return (changes, Some(e)),
            }
        }
        (changes, None)
    }
}
