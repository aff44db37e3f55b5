//! [`DynamoDbStore`]: checkpoints in a DynamoDB table, guarded by conditional writes.

use std::collections::HashMap;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use tokio::sync::Mutex;

pub(crate) mod table;

use super::{CheckpointStore, mismatch, parse};
use crate::checkpoint::Checkpoint;
use crate::error::{Error, ErrorKind, Result};

const KEY: &str = "stream_arn";
const CHECKPOINT: &str = "checkpoint";
const OWNER: &str = "owner";
const VERSION: &str = "version";
const UPDATED_AT: &str = "updated_at";

/// Checkpoints in a DynamoDB table, one item per stream, with ownership: two processes that
/// both think they own a stream cannot silently overwrite each other's position.
///
/// The table's partition key is `stream_arn` (string); [`create_table`](Self::create_table)
/// creates such a table (on-demand capacity). Each item holds:
///
/// | attribute    | type | meaning                                                      |
/// |--------------|------|--------------------------------------------------------------|
/// | `stream_arn` | S    | the stream (key)                                             |
/// | `checkpoint` | S    | the checkpoint's text form (absent after a bare claim)       |
/// | `owner`      | S    | the [owner id](Self::owner) of the store that wrote it last   |
/// | `version`    | N    | bumped by every save and claim                               |
/// | `updated_at` | N    | seconds since the Unix epoch of the last save or claim       |
///
/// # Ownership
/// Every save is a conditional write. It succeeds when the table has no item for the stream,
/// or when this store owns the item *and* the item is still at the version this store last
/// loaded, claimed or saved. Anything else is [`ErrorKind::Conflict`], naming the other
/// owner, and the stored checkpoint is left as it is. So:
///
/// - Two stores racing to save a stream's first checkpoint: one wins, the other gets
///   `Conflict`.
/// - A store that [loaded](CheckpointStore::load) a checkpoint another owner saved cannot
///   save over it: a second consumer of the same stream is refused.
/// - To take a stream over deliberately (a new deployment replacing an old one, a restart
///   with a fresh owner id), call [`claim`](Self::claim): it makes this store the owner and
///   returns the checkpoint to resume from. The previous owner's next save is a `Conflict`,
///   which should stop it.
///
/// Each store gets a unique owner id (host name, process id and a random part) unless
/// [`with_owner`](Self::with_owner) sets one.
///
/// # Recipe
/// ```no_run
/// use std::time::Duration;
/// use dynamodb_stream::{ChangeStream, Committer, ErrorKind};
/// use dynamodb_stream::store::DynamoDbStore;
/// use futures::StreamExt;
///
/// # async fn run(
/// #     dynamodb: aws_sdk_dynamodb::Client,
/// #     streams: aws_sdk_dynamodbstreams::Client,
/// #     arn: &str,
/// # ) -> dynamodb_stream::Result<()> {
/// // `dynamodb` and `streams`: clients made from one `aws_config::load_defaults` config.
/// let store = DynamoDbStore::new(dynamodb, "stream-checkpoints");
/// store.create_table().await?; // once, at setup: does nothing if the table exists
///
/// // This process takes the stream over; a previous owner will get `Conflict` on its next save.
/// let checkpoint = store.claim(arn).await?;
/// let stream = ChangeStream::builder(streams, arn).resume_from(checkpoint).build()?;
/// let mut events = Committer::new(stream, store).every(1000).interval(Duration::from_secs(10));
/// while let Some(event) = events.next().await {
///     let event = match event {
///         Err(e) if e.kind() == ErrorKind::Conflict => {
///             eprintln!("another consumer took the stream over: {e}");
///             return Ok(()); // stop consuming: it owns the stream now
///         }
///         other => other?,
///     };
///     // ... process the event ...
///     events.ack(&event);
/// }
/// events.close().await?;
/// # Ok(()) }
/// ```
///
/// To refuse to start when someone else owns the stream, resume with
/// [`ChangeStreamBuilder::resume_from_store`](crate::ChangeStreamBuilder::resume_from_store)
/// instead of `claim`: the first save then fails with `Conflict` if another owner saved last.
/// A process that keeps its owner id across restarts ([`with_owner`](Self::with_owner)) can
/// resume that way without a claim.
pub struct DynamoDbStore {
    client: Client,
    table: String,
    owner: String,
    /// Per stream: the item version this store last read or wrote (0: no item).
    versions: Mutex<HashMap<String, u64>>,
}

impl DynamoDbStore {
    /// A store using the table `table` through `client`, with a fresh unique owner id.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        let host = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "host".to_owned());
        let owner = format!("{host}/{}/{:08x}", std::process::id(), fastrand::u32(..));
        Self {
            client,
            table: table.into(),
            owner,
            versions: Mutex::new(HashMap::new()),
        }
    }

    /// Sets the owner id this store writes and checks. Give every process its own id (for
    /// example the pod or instance name): two stores with one id are not told apart, and only
    /// the version check stands between them.
    #[must_use]
    pub fn with_owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }

    /// This store's owner id.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The table's name.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// Creates the table (partition key `stream_arn` of type string, on-demand capacity) and
    /// waits until it is active. Does nothing if a table of that name already exists.
    ///
    /// # Errors
    /// [`ErrorKind::Store`] when the table cannot be created, or is not active within five
    /// minutes.
    pub async fn create_table(&self) -> Result<()> {
        table::create_table(&self.client, &self.table, &[KEY]).await
    }

    /// Makes this store the owner of the stream's item, whoever owned it, and returns the
    /// checkpoint to resume from (`None` when none was saved yet). The previous owner's next
    /// save fails with [`ErrorKind::Conflict`].
    ///
    /// # Errors
    /// [`ErrorKind::Store`] when the table cannot be written;
    /// [`ErrorKind::InvalidCheckpoint`] or [`ErrorKind::CheckpointMismatch`] when the stored
    /// checkpoint is unreadable or of another stream (the claim itself has then happened, and
    /// the checkpoint is left as it was).
    pub async fn claim(&self, stream_arn: &str) -> Result<Option<Checkpoint>> {
        let mut versions = self.versions.lock().await;
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(stream_arn.to_owned()))
            .update_expression("SET #o = :me, #v = if_not_exists(#v, :zero) + :one, #u = :now")
            .expression_attribute_names("#o", OWNER)
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_names("#u", UPDATED_AT)
            .expression_attribute_values(":me", AttributeValue::S(self.owner.clone()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":now", now())
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| self.sdk_error("claim the checkpoint", Some(stream_arn), e))?;
        let item = out.attributes().cloned().unwrap_or_default();
        let version = version_of(&item);
        versions.insert(stream_arn.to_owned(), version);
        self.checkpoint_of(stream_arn, &item)
    }

    fn location(&self, stream_arn: &str) -> String {
        format!("DynamoDB table {}, item {KEY} = {stream_arn}", self.table)
    }

    fn sdk_error<E, R>(&self, what: &str, stream_arn: Option<&str>, e: SdkError<E, R>) -> Error
    where
        E: std::error::Error + Send + Sync + 'static,
        R: fmt::Debug + Send + Sync + 'static,
    {
        let location = match stream_arn {
            Some(arn) => self.location(arn),
            None => format!("DynamoDB table {}", self.table),
        };
        table::sdk_error(&location, what, e)
    }

    /// The checkpoint an item holds, checked against the stream it is stored under.
    fn checkpoint_of(
        &self,
        stream_arn: &str,
        item: &HashMap<String, AttributeValue>,
    ) -> Result<Option<Checkpoint>> {
        let Some(value) = item.get(CHECKPOINT) else {
            return Ok(None);
        };
        let location = self.location(stream_arn);
        let text = value.as_s().map_err(|_| {
            Error::new(
                ErrorKind::InvalidCheckpoint,
                format!("{location}: the `{CHECKPOINT}` attribute is not a string"),
            )
        })?;
        let checkpoint = parse(&location, text)?;
        if checkpoint.stream_arn() != stream_arn {
            return Err(mismatch(&location, checkpoint.stream_arn(), stream_arn));
        }
        Ok(Some(checkpoint))
    }
}

impl fmt::Debug for DynamoDbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoDbStore")
            .field("table", &self.table)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl CheckpointStore for DynamoDbStore {
    /// Reads the stream's item (strongly consistent) and remembers its version: a later save
    /// succeeds only if this store owns the item and nobody wrote it in between.
    async fn load(&self, stream_arn: &str) -> Result<Option<Checkpoint>> {
        let mut versions = self.versions.lock().await;
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(stream_arn.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.sdk_error("read the checkpoint", Some(stream_arn), e))?;
        let item = out.item().cloned().unwrap_or_default();
        versions.insert(stream_arn.to_owned(), version_of(&item));
        self.checkpoint_of(stream_arn, &item)
    }

    async fn save(&self, checkpoint: &Checkpoint) -> Result<()> {
        let stream_arn = checkpoint.stream_arn();
        let mut versions = self.versions.lock().await;
        let expected = versions.get(stream_arn).copied().unwrap_or(0);
        let next = expected + 1;
        let text = checkpoint.to_string();
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(stream_arn.to_owned()))
            .update_expression("SET #c = :c, #o = :me, #v = :next, #u = :now")
            .expression_attribute_names("#c", CHECKPOINT)
            .expression_attribute_names("#o", OWNER)
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_names("#u", UPDATED_AT)
            .expression_attribute_values(":c", AttributeValue::S(text.clone()))
            .expression_attribute_values(":me", AttributeValue::S(self.owner.clone()))
            .expression_attribute_values(":next", AttributeValue::N(next.to_string()))
            .expression_attribute_values(":now", now())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        request = if expected == 0 {
            request
                .condition_expression("attribute_not_exists(#k)")
                .expression_attribute_names("#k", KEY)
        } else {
            request
                .condition_expression("#o = :me AND #v = :expected")
                .expression_attribute_values(":expected", AttributeValue::N(expected.to_string()))
        };
        match request.send().await {
            Ok(_) => {
                versions.insert(stream_arn.to_owned(), next);
                Ok(())
            }
            Err(SdkError::ServiceError(e)) => {
                let UpdateItemError::ConditionalCheckFailedException(failed) = e.err() else {
                    return Err(self.sdk_error(
                        "save the checkpoint",
                        Some(stream_arn),
                        SdkError::ServiceError(e),
                    ));
                };
                let current = failed.item().cloned().unwrap_or_default();
                let owner = current.get(OWNER).and_then(|v| v.as_s().ok());
                let version = version_of(&current);
                let stored = current.get(CHECKPOINT).and_then(|v| v.as_s().ok());
                if owner == Some(&self.owner) && version == next && stored == Some(&text) {
                    // Our own write, applied by an earlier attempt whose reply was lost and
                    // retried by the SDK.
                    versions.insert(stream_arn.to_owned(), next);
                    return Ok(());
                }
                Err(self.conflict(stream_arn, expected, owner, version, current.is_empty()))
            }
            Err(e) => Err(self.sdk_error("save the checkpoint", Some(stream_arn), e)),
        }
    }
}

impl DynamoDbStore {
    fn conflict(
        &self,
        stream_arn: &str,
        expected: u64,
        owner: Option<&String>,
        version: u64,
        gone: bool,
    ) -> Error {
        let location = self.location(stream_arn);
        let me = &self.owner;
        let message = if gone {
            format!(
                "{location}: the item this store had read (version {expected}) was deleted; \
                 not saving over it. Call claim() to take the stream over deliberately"
            )
        } else if expected == 0 {
            format!(
                "{location}: holds a checkpoint saved by {} (version {version}) that this \
                 store ({me}) did not load or claim; not saving over it. Another consumer may \
                 own the stream: call claim() to take it over deliberately",
                owner.map_or("an unknown owner", |o| o.as_str())
            )
        } else {
            format!(
                "{location}: the stream is owned by {} (version {version}), not by this store \
                 ({me}, expecting version {expected}); not saving over it. Another consumer \
                 owns the stream: call claim() to take it over deliberately",
                owner.map_or("an unknown owner", |o| o.as_str())
            )
        };
        Error::new(ErrorKind::Conflict, message)
    }
}

fn version_of(item: &HashMap<String, AttributeValue>) -> u64 {
    item.get(VERSION)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn now() -> AttributeValue {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    AttributeValue::N(secs.to_string())
}
