//! A Lambda record becomes the SDK record GetRecords would have returned, and then a
//! [`Change`] through [`Change::from_record`], the stream's own code path.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lambda_events::dynamodb::{Event, EventRecord, UserIdentity};
use aws_sdk_dynamodbstreams::primitives::DateTime;
use aws_sdk_dynamodbstreams::types::{
    Identity, OperationType, Record, StreamRecord, StreamViewType,
};

use crate::error::{Error, ErrorKind, Result};
use crate::event::{Change, Item, Origin};

/// The changes of a Lambda DynamoDB event, in the batch's order: one `Result` per record.
///
/// A record that cannot be placed in the stream (no or an invalid sequence number, an unknown
/// `eventName`, no `eventSourceARN`, an `eventSource` other than `aws:dynamodb`) is an
/// [`ErrorKind::MalformedRecord`] in its own slot; the records around it still convert.
///
/// ```
/// use dynamodb_stream::lambda::{Event, changes};
///
/// let event: Event = serde_json::from_str(r#"{"Records": [{
///     "eventID": "1", "eventName": "INSERT", "eventSource": "aws:dynamodb",
///     "awsRegion": "us-east-1",
///     "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/T/stream/2026-01-01T00:00:00.000",
///     "dynamodb": {"Keys": {"pk": {"S": "a"}}, "SequenceNumber": "100000000000000000001",
///                  "SizeBytes": 8, "StreamViewType": "KEYS_ONLY"}}]}"#)?;
/// for change in changes(event) {
///     let change = change?;
///     assert_eq!(change.shard_id(), None); // a Lambda record does not name its shard
///     assert_eq!(change.sequence_number().as_str(), "100000000000000000001");
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn changes(event: Event) -> impl ExactSizeIterator<Item = Result<Change>> + Send {
    let mut converter = Converter::default();
    event
        .records
        .into_iter()
        .map(move |record| converter.convert(record))
}

impl TryFrom<EventRecord> for Change {
    type Error = Error;

    /// One Lambda record as a [`Change`]; see [`changes`] for what makes a record malformed.
    fn try_from(record: EventRecord) -> Result<Self> {
        Converter::default().convert(record)
    }
}

/// Converts the records of a batch, sharing one [`Origin`] between records of one stream.
#[derive(Default)]
pub(crate) struct Converter {
    last: Option<Arc<Origin>>,
}

impl Converter {
    pub(crate) fn convert(&mut self, record: EventRecord) -> Result<Change> {
        let origin = self.origin(&record)?;
        Change::from_record(&origin, sdk_record(record))
    }

    /// The record's stream; Lambda does not say which shard it was read from.
    fn origin(&mut self, record: &EventRecord) -> Result<Arc<Origin>> {
        let malformed = |why: String| {
            Error::new(
                ErrorKind::MalformedRecord,
                format!("record {:?} {why}", record.event_id),
            )
        };
        if let Some(source) = record.event_source.as_deref()
            && source != "aws:dynamodb"
        {
            return Err(malformed(format!(
                "comes from {source:?}, not aws:dynamodb"
            )));
        }
        let arn = match record.event_source_arn.as_deref() {
            Some(arn) if !arn.is_empty() => arn,
            _ => return Err(malformed("has no eventSourceARN".to_owned())),
        };
        match &self.last {
            Some(origin) if *origin.stream_arn == *arn => Ok(origin.clone()),
            _ => {
                let origin = Origin::new(arn.into(), None);
                self.last = Some(origin.clone());
                Ok(origin)
            }
        }
    }
}

/// The record as GetRecords returns it, with what `aws_lambda_events` filled in by default
/// turned back into absent fields.
fn sdk_record(record: EventRecord) -> Record {
    let stream = record.change;
    let dynamodb = StreamRecord::builder()
        .set_approximate_creation_date_time(creation_time(stream.approximate_creation_date_time))
        .set_keys(Some(Item::from(stream.keys)))
        .set_new_image(image(stream.new_image))
        .set_old_image(image(stream.old_image))
        .set_sequence_number(stream.sequence_number)
        .size_bytes(stream.size_bytes)
        .set_stream_view_type(
            stream
                .stream_view_type
                .map(|view| StreamViewType::from(view.to_string().as_str())),
        )
        .build();
    Record::builder()
        .event_id(record.event_id)
        // An unknown name becomes `OperationType::Unknown`, which `from_record` refuses.
        .event_name(OperationType::from(record.event_name.as_str()))
        .set_event_version(record.event_version)
        .set_event_source(record.event_source)
        .aws_region(record.aws_region)
        .dynamodb(dynamodb)
        .set_user_identity(record.user_identity.map(identity))
        .build()
}

/// `None` for the epoch, which `aws_lambda_events` puts where the record has no time.
fn creation_time(time: impl Into<SystemTime>) -> Option<DateTime> {
    let time = time.into();
    (time != UNIX_EPOCH).then(|| DateTime::from(time))
}

/// `None` for an empty image, which `aws_lambda_events` puts where the record has none: an
/// item always holds at least its key attributes.
fn image(item: serde_dynamo::Item) -> Option<Item> {
    (!item.is_empty()).then(|| Item::from(item))
}

/// The identity, with the empty strings `aws_lambda_events` puts for absent fields dropped.
fn identity(user: UserIdentity) -> Identity {
    let present = |s: String| (!s.is_empty()).then_some(s);
    Identity::builder()
        .set_type(present(user.type_))
        .set_principal_id(present(user.principal_id))
        .build()
}
