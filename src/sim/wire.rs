//! The JSON 1.0 protocol: operation names, request bodies, response and error bodies.

use super::json::write_str;
use super::seq::Seq;
use super::table::KeySchema;
use super::types::{Fault, Operation};
use aws_sdk_dynamodbstreams::types::StreamViewType;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// Prefix of the `X-Amz-Target` header.
const TARGET_PREFIX: &str = "DynamoDBStreams_20120810.";
/// Namespace of the service's modelled errors.
const NAMESPACE: &str = "com.amazonaws.dynamodb.v20120810#";

/// The service errors the simulator answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorCode {
    ExpiredIterator,
    TrimmedDataAccess,
    ResourceNotFound,
    LimitExceeded,
    InternalServerError,
    Validation,
    Serialization,
    UnknownOperation,
}

impl ErrorCode {
    fn status(self) -> u16 {
        match self {
            ErrorCode::InternalServerError => 500,
            _ => 400,
        }
    }

    /// The `__type`, with the namespace the real service uses for each.
    fn type_name(self) -> String {
        match self {
            ErrorCode::ExpiredIterator => format!("{NAMESPACE}ExpiredIteratorException"),
            ErrorCode::TrimmedDataAccess => format!("{NAMESPACE}TrimmedDataAccessException"),
            ErrorCode::ResourceNotFound => format!("{NAMESPACE}ResourceNotFoundException"),
            ErrorCode::LimitExceeded => format!("{NAMESPACE}LimitExceededException"),
            ErrorCode::InternalServerError => format!("{NAMESPACE}InternalServerError"),
            ErrorCode::Validation => "com.amazon.coral.validate#ValidationException".to_owned(),
            ErrorCode::Serialization => {
                "com.amazon.coral.service#SerializationException".to_owned()
            }
            ErrorCode::UnknownOperation => {
                "com.amazon.coral.service#UnknownOperationException".to_owned()
            }
        }
    }
}

impl From<Fault> for ErrorCode {
    fn from(f: Fault) -> Self {
        match f {
            Fault::LimitExceeded => ErrorCode::LimitExceeded,
            Fault::InternalServerError => ErrorCode::InternalServerError,
            Fault::ResourceNotFound => ErrorCode::ResourceNotFound,
            Fault::ExpiredIterator => ErrorCode::ExpiredIterator,
            Fault::TrimmedDataAccess => ErrorCode::TrimmedDataAccess,
            Fault::Validation => ErrorCode::Validation,
        }
    }
}

/// An error response.
#[derive(Clone, Debug)]
pub(crate) struct ApiError {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn render(&self) -> (u16, Bytes) {
        let body = json!({ "__type": self.code.type_name(), "message": self.message });
        (self.code.status(), Bytes::from(body.to_string()))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ShardFilterInput {
    pub(crate) r#type: Option<String>,
    pub(crate) shard_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DescribeStreamInput {
    pub(crate) stream_arn: Option<String>,
    pub(crate) limit: Option<i64>,
    pub(crate) exclusive_start_shard_id: Option<String>,
    pub(crate) shard_filter: Option<ShardFilterInput>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct GetShardIteratorInput {
    pub(crate) stream_arn: Option<String>,
    pub(crate) shard_id: Option<String>,
    pub(crate) shard_iterator_type: Option<String>,
    pub(crate) sequence_number: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct GetRecordsInput {
    pub(crate) shard_iterator: Option<String>,
    pub(crate) limit: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListStreamsInput {
    pub(crate) table_name: Option<String>,
}

/// A parsed request.
#[derive(Debug)]
pub(crate) enum Request {
    DescribeStream(DescribeStreamInput),
    GetShardIterator(GetShardIteratorInput),
    GetRecords(GetRecordsInput),
    ListStreams(ListStreamsInput),
}

/// The operation named by an `X-Amz-Target` value, with or without the service prefix.
pub(crate) fn operation(target: &str) -> Result<Operation, ApiError> {
    match target.strip_prefix(TARGET_PREFIX).unwrap_or(target) {
        "DescribeStream" => Ok(Operation::DescribeStream),
        "GetShardIterator" => Ok(Operation::GetShardIterator),
        "GetRecords" => Ok(Operation::GetRecords),
        "ListStreams" => Ok(Operation::ListStreams),
        _ => Err(ApiError::new(
            ErrorCode::UnknownOperation,
            format!("unknown operation {target:?}"),
        )),
    }
}

/// Parses the body of a call to `op`. An empty body reads as `{}`.
pub(crate) fn parse(op: Operation, body: &[u8]) -> Result<Request, ApiError> {
    fn de<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
        let body = if body.is_empty() {
            b"{}".as_slice()
        } else {
            body
        };
        serde_json::from_slice(body)
            .map_err(|e| ApiError::new(ErrorCode::Serialization, format!("bad request body: {e}")))
    }
    match op {
        Operation::DescribeStream => de(body).map(Request::DescribeStream),
        Operation::GetShardIterator => de(body).map(Request::GetShardIterator),
        Operation::GetRecords => de(body).map(Request::GetRecords),
        Operation::ListStreams => de(body).map(Request::ListStreams),
        Operation::Any => Err(ApiError::new(ErrorCode::UnknownOperation, "no operation")),
    }
}

/// One shard as DescribeStream lists it.
#[derive(Clone, Debug)]
pub(crate) struct ShardView {
    pub(crate) id: Arc<str>,
    pub(crate) parent: Option<Arc<str>>,
    pub(crate) start: Seq,
    pub(crate) end: Option<Seq>,
}

/// A successful answer, rendered once the lock is released.
#[derive(Debug)]
pub(crate) enum Reply {
    Describe {
        shards: Vec<ShardView>,
        last_evaluated: Option<Arc<str>>,
    },
    Iterator(String),
    Records {
        records: Vec<Bytes>,
        next: Option<String>,
    },
    Streams {
        listed: bool,
    },
}

/// What DescribeStream and ListStreams repeat about the stream.
#[derive(Clone, Debug)]
pub(crate) struct StreamMeta {
    pub(crate) arn: String,
    pub(crate) label: String,
    pub(crate) table: String,
    pub(crate) keys: KeySchema,
    pub(crate) view: StreamViewType,
    pub(crate) created_secs: u64,
}

impl Reply {
    pub(crate) fn render(self, meta: &StreamMeta) -> Bytes {
        match self {
            Reply::Describe {
                shards,
                last_evaluated,
            } => describe_body(meta, shards, last_evaluated),
            Reply::Iterator(it) => Bytes::from(json!({ "ShardIterator": it }).to_string()),
            Reply::Records { records, next } => records_body(&records, next.as_deref()),
            Reply::Streams { listed } => {
                let streams: Vec<Value> = if listed {
                    vec![json!({
                        "StreamArn": meta.arn,
                        "StreamLabel": meta.label,
                        "TableName": meta.table,
                    })]
                } else {
                    Vec::new()
                };
                Bytes::from(json!({ "Streams": streams }).to_string())
            }
        }
    }
}

fn describe_body(meta: &StreamMeta, shards: Vec<ShardView>, last: Option<Arc<str>>) -> Bytes {
    let mut key_schema = vec![json!({ "AttributeName": meta.keys.hash, "KeyType": "HASH" })];
    if let Some(range) = &meta.keys.range {
        key_schema.push(json!({ "AttributeName": range, "KeyType": "RANGE" }));
    }
    let shards: Vec<Value> = shards
        .into_iter()
        .map(|s| {
            let mut range = json!({ "StartingSequenceNumber": s.start.to_string() });
            if let Some(end) = s.end {
                range["EndingSequenceNumber"] = Value::from(end.to_string());
            }
            let mut shard = json!({ "ShardId": &*s.id, "SequenceNumberRange": range });
            if let Some(parent) = s.parent {
                shard["ParentShardId"] = Value::from(&*parent);
            }
            shard
        })
        .collect();
    let mut description = json!({
        "StreamArn": meta.arn,
        "StreamLabel": meta.label,
        "StreamStatus": "ENABLED",
        "StreamViewType": meta.view.as_str(),
        "CreationRequestDateTime": meta.created_secs,
        "TableName": meta.table,
        "KeySchema": key_schema,
        "Shards": shards,
    });
    if let Some(last) = last {
        description["LastEvaluatedShardId"] = Value::from(&*last);
    }
    Bytes::from(json!({ "StreamDescription": description }).to_string())
}

/// Concatenates pre-rendered records: no per-record serialization at read time.
fn records_body(records: &[Bytes], next: Option<&str>) -> Bytes {
    let len: usize = records.iter().map(|r| r.len() + 1).sum();
    let mut out = Vec::with_capacity(len + 64 + next.map_or(0, str::len));
    out.extend_from_slice(b"{\"Records\":[");
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(r);
    }
    out.push(b']');
    if let Some(next) = next {
        out.extend_from_slice(b",\"NextShardIterator\":");
        write_str(&mut out, next);
    }
    out.push(b'}');
    Bytes::from(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_bodies() {
        assert_eq!(
            operation("DynamoDBStreams_20120810.GetRecords").unwrap(),
            Operation::GetRecords
        );
        assert_eq!(
            operation("DescribeStream").unwrap(),
            Operation::DescribeStream
        );
        assert_eq!(
            operation("Nope").unwrap_err().code,
            ErrorCode::UnknownOperation
        );
        assert!(matches!(
            parse(Operation::GetRecords, b""),
            Ok(Request::GetRecords(_))
        ));
        for bad in [&b"{"[..], b"[]", b"{\"Limit\":\"x\"}", b"\xff"] {
            assert_eq!(
                parse(Operation::GetRecords, bad).unwrap_err().code,
                ErrorCode::Serialization
            );
        }
        let (status, body) = ApiError::new(ErrorCode::InternalServerError, "x").render();
        assert_eq!(status, 500);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["__type"],
            "com.amazonaws.dynamodb.v20120810#InternalServerError"
        );
    }

    #[test]
    fn records_body_is_valid_json() {
        let recs = [
            Bytes::from_static(b"{\"a\":1}"),
            Bytes::from_static(b"{\"b\":2}"),
        ];
        let v: Value = serde_json::from_slice(&records_body(&recs, Some("x|1|y"))).unwrap();
        assert_eq!(v["Records"][1]["b"], 2);
        assert_eq!(v["NextShardIterator"], "x|1|y");
        let v: Value = serde_json::from_slice(&records_body(&[], None)).unwrap();
        assert!(v.get("NextShardIterator").is_none());
    }
}
