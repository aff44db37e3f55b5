//! The lease items in a DynamoDB table: string keys `pk` (`<group>|<stream ARN>`) and `sk`,
//! every write a conditional `PutItem`/`UpdateItem`, reads consistent `Query`s of one
//! partition (never a scan).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeyType, ReturnValue, ReturnValuesOnConditionCheckFailure, ScalarAttributeType,
};
use futures::FutureExt as _;

use super::backend::{Call, LeaseBackend};
use super::model::{Control, Item, Op, Outcome, ShardLease};
use crate::api::Failure;
use crate::error::{Error, ErrorKind};
use crate::retry::{Fault, classify};
use crate::store::dynamodb::table::create_table;

mod items;
mod write;

use items::{Attrs, parse_item, shard_item};

/// Done shards and departed workers stay this long (more than the stream's 24 h retention),
/// then DynamoDB's time to live removes them.
const KEEP_DONE: Duration = Duration::from_secs(48 * 3600);

#[derive(Debug)]
pub(super) struct DynamoLeases {
    client: Client,
    table: String,
}

impl DynamoLeases {
    pub(super) fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    fn failure<E, R>(&self, what: &str, err: SdkError<E, R>) -> Failure
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: crate::retry::HasStatus + std::fmt::Debug + Send + Sync + 'static,
    {
        Failure {
            fault: classify(&err),
            error: Error::store(format!("lease table {}: cannot {what}", self.table), err),
        }
    }

    async fn prepare_table(&self, create: bool) -> Result<(), Failure> {
        let described = self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await;
        let table = match described {
            Ok(out) => out.table,
            Err(SdkError::ServiceError(e)) if e.err().is_resource_not_found_exception() => {
                if !create {
                    return Err(Failure {
                        fault: Fault::NotFound,
                        error: Error::new(
                            ErrorKind::Store,
                            format!(
                                "lease table {} does not exist: create it with LeaseTable::create_table",
                                self.table
                            ),
                        ),
                    });
                }
                create_table(&self.client, &self.table, &["pk", "sk"])
                    .await
                    .map_err(|error| Failure {
                        fault: Fault::Invalid,
                        error,
                    })?;
                self.enable_ttl().await;
                return Ok(());
            }
            Err(e) => return Err(self.failure("describe it", e)),
        };
        let schema_ok = table.as_ref().is_some_and(|t| {
            let keys: Vec<(&str, &KeyType)> = t
                .key_schema()
                .iter()
                .map(|k| (k.attribute_name(), k.key_type()))
                .collect();
            let strings = t.attribute_definitions().iter().all(|d| {
                !["pk", "sk"].contains(&d.attribute_name())
                    || d.attribute_type() == &ScalarAttributeType::S
            });
            strings && keys == [("pk", &KeyType::Hash), ("sk", &KeyType::Range)]
        });
        if schema_ok {
            return Ok(());
        }
        Err(Failure {
            fault: Fault::Invalid,
            error: Error::new(
                ErrorKind::Config,
                format!(
                    "table {} has another key schema than a lease table's (partition key pk, sort key sk, both strings): is it the right table?",
                    self.table
                ),
            ),
        })
    }

    /// Done shards and departed workers expire; without the setting they stay, harmlessly.
    async fn enable_ttl(&self) {
        let spec = aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
            .attribute_name("expires_at")
            .enabled(true)
            .build();
        let Ok(spec) = spec else { return };
        let set = self
            .client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(spec)
            .send()
            .await;
        if let Err(e) = set {
            tracing::warn!(table = %self.table, error = %e, "could not turn on the lease table's time to live: old items stay");
        }
    }

    async fn query(&self, pk: &str, prefix: &str) -> Result<Vec<Item>, Failure> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
                .expression_attribute_values(":prefix", AttributeValue::S(prefix.to_owned()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| self.failure("read its items", e))?;
            for item in out.items() {
                items.push(parse_item(item).map_err(|error| Failure {
                    fault: Fault::Invalid,
                    error: error.at(&format!("lease table {}", self.table)),
                })?);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }

    async fn write_op(&self, pk: &str, op: Op) -> Result<Outcome, Failure> {
        let w = write::write_of(pk, &op, expires_at(KEEP_DONE));
        let sent = if let Some(item) = w.put {
            self.put(item, w.condition, w.names, w.values).await?
        } else if w.delete {
            self.delete(w.key).await?
        } else {
            self.update(w).await?
        };
        let parse = |attrs: Option<Attrs>| {
            attrs
                .map(|a| parse_item(&a))
                .transpose()
                .map_err(|error| Failure {
                    fault: Fault::Invalid,
                    error: error.at(&format!("lease table {}", self.table)),
                })
        };
        Ok(match sent {
            Sent::Applied(after) => Outcome::Applied(parse(after)?),
            Sent::Refused(current) => Outcome::Refused(parse(current)?),
        })
    }

    async fn put(
        &self,
        item: Attrs,
        condition: String,
        names: Option<HashMap<String, String>>,
        values: Option<Attrs>,
    ) -> Result<Sent, Failure> {
        let sent = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item.clone()))
            .condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(Sent::Applied(Some(item))),
            Err(SdkError::ServiceError(e)) => match e.err() {
                PutItemError::ConditionalCheckFailedException(c) => {
                    Ok(Sent::Refused(c.item().cloned()))
                }
                _ => Err(self.failure("write an item", SdkError::ServiceError(e))),
            },
            Err(e) => Err(self.failure("write an item", e)),
        }
    }

    async fn delete(&self, key: Attrs) -> Result<Sent, Failure> {
        let sent = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .send()
            .await;
        sent.map(|_| Sent::Applied(None))
            .map_err(|e| self.failure("delete an item", e))
    }

    async fn update(&self, w: write::Write) -> Result<Sent, Failure> {
        let sent = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(w.key))
            .update_expression(w.update)
            .condition_expression(w.condition)
            .set_expression_attribute_names(w.names)
            .set_expression_attribute_values(w.values)
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match sent {
            Ok(out) => Ok(Sent::Applied(out.attributes)),
            Err(SdkError::ServiceError(e)) => match e.err() {
                UpdateItemError::ConditionalCheckFailedException(c) => {
                    Ok(Sent::Refused(c.item().cloned()))
                }
                _ => Err(self.failure("write an item", SdkError::ServiceError(e))),
            },
            Err(e) => Err(self.failure("write an item", e)),
        }
    }
}

/// A write's answer, before its items are parsed.
enum Sent {
    Applied(Option<Attrs>),
    Refused(Option<Attrs>),
}

/// Seconds since the epoch, `keep` from now: a time-to-live stamp (garbage collection only;
/// no decision of the protocol reads a wall clock).
fn expires_at(keep: Duration) -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from((now + keep).as_secs()).unwrap_or(i64::MAX)
}

impl LeaseBackend for DynamoLeases {
    fn prepare(&self, create: bool) -> Call<'_, ()> {
        self.prepare_table(create).boxed()
    }

    fn control<'a>(&'a self, pk: &'a str) -> Call<'a, Control> {
        async move {
            let mut control = Control::default();
            for item in self.query(pk, "#").await? {
                match item {
                    Item::Meta(meta) => control.meta = Some(meta),
                    Item::Worker(w) => control.workers.push(w),
                    Item::Ask(a) => control.asks.push(a),
                    Item::Shard(_) => {}
                }
            }
            Ok(control)
        }
        .boxed()
    }

    fn shards<'a>(&'a self, pk: &'a str) -> Call<'a, Vec<ShardLease>> {
        async move {
            let items = self.query(pk, "s#").await?;
            Ok(items.into_iter().filter_map(shard_item).collect())
        }
        .boxed()
    }

    fn write<'a>(&'a self, pk: &'a str, op: Op) -> Call<'a, Outcome> {
        self.write_op(pk, op).boxed()
    }
}
