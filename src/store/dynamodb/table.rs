//! What the DynamoDB-backed stores share: creating their table, and their errors.

use std::fmt;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
};

use crate::error::{Error, ErrorKind, Result};

/// Creates the table `table` with string keys (`keys`: the partition key, then the sort key if
/// any) and on-demand capacity, and waits until it is active. Does nothing if a table of that
/// name exists.
///
/// # Errors
/// [`ErrorKind::Store`] when the table cannot be created, or is not active within five
/// minutes.
pub(crate) async fn create_table(client: &Client, table: &str, keys: &[&str]) -> Result<()> {
    let location = format!("DynamoDB table {table}");
    let mut request = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest);
    for (i, name) in keys.iter().enumerate() {
        let kind = if i == 0 {
            KeyType::Hash
        } else {
            KeyType::Range
        };
        let definition = AttributeDefinition::builder()
            .attribute_name(*name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| Error::store(format!("{location}: cannot describe its key"), e))?;
        let schema = KeySchemaElement::builder()
            .attribute_name(*name)
            .key_type(kind)
            .build()
            .map_err(|e| Error::store(format!("{location}: cannot describe its key"), e))?;
        request = request.attribute_definitions(definition).key_schema(schema);
    }
    match request.send().await {
        Ok(_) => {}
        Err(SdkError::ServiceError(e))
            if matches!(e.err(), CreateTableError::ResourceInUseException(_)) => {}
        Err(e) => return Err(sdk_error(&location, "create it", e)),
    }
    for _ in 0..300 {
        let described = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| sdk_error(&location, "describe it", e))?;
        if described.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(Error::new(
        ErrorKind::Store,
        format!("{location}: cannot see it become active within five minutes"),
    ))
}

/// An [`ErrorKind::Store`] error for a failed call: `location` and `what` say what failed,
/// the SDK's error (with the service's message) is the source.
pub(crate) fn sdk_error<E, R>(location: &str, what: &str, e: SdkError<E, R>) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
    R: fmt::Debug + Send + Sync + 'static,
{
    Error::store(format!("{location}: cannot {what}"), e)
}
