//! What `tail` reads: the demo, or a stream on AWS (or at the endpoint given), and the lease
//! table it shares the stream through.

use std::time::Duration;

use aws_config::meta::region::RegionProviderChain;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodbstreams::config::ProvideCredentials as _;
use dynamodb_stream::lease::LeaseTable;
use dynamodb_stream::{ChangeStream, ChangeStreamBuilder};

use crate::demo::Demo;
use crate::{Args, Failure, Start, chain};

/// The consumer to run, without its resume position yet.
pub(crate) struct Source {
    pub(crate) builder: ChangeStreamBuilder,
    pub(crate) demo: Option<Demo>,
    pub(crate) lease: Option<LeaseTable>,
}

/// The stream's ARN, before anything starts: the demo's, the one given, or the table's.
pub(crate) async fn stream_arn(args: &Args) -> Result<(String, Option<SdkConfig>), Failure> {
    if is_demo(args) {
        return Ok((Demo::stream_arn(), None));
    }
    let config = aws_config(args).await?;
    let arn = match (&args.stream_arn, &args.table) {
        (Some(arn), _) => arn.clone(),
        (None, Some(table)) => latest_stream_arn(&config, table).await?,
        (None, None) => return Err(Failure::Fatal("no stream to read".to_owned())),
    };
    Ok((arn, Some(config)))
}

pub(crate) fn is_demo(args: &Args) -> bool {
    args.demo || (args.stream_arn.is_none() && args.table.is_none())
}

/// The consumer for `arn`; `resume` replays the demo's script up to it.
pub(crate) async fn source(
    args: &Args,
    arn: String,
    config: Option<&SdkConfig>,
    resume: Option<&dynamodb_stream::Checkpoint>,
) -> Result<Source, Failure> {
    let Some(config) = config else {
        let demo = Demo::start(resume);
        let sim = demo.simulator();
        let builder = ChangeStream::builder(sim.client(), sim.stream_arn())
            .start(args.from.unwrap_or(Start::TrimHorizon).position())
            .poll_interval(Duration::from_millis(50))
            .max_poll_interval(Duration::from_millis(250));
        return Ok(Source {
            builder,
            demo: Some(demo),
            lease: None,
        });
    };
    let client = aws_sdk_dynamodbstreams::Client::new(config);
    let mut builder = ChangeStream::builder(client, arn)
        .start(args.from.unwrap_or(Start::Latest).position())
        .until_caught_up(args.until_caught_up);
    let lease = match &args.lease_table {
        Some(table) => Some(lease_table(args, config, table).await?),
        None => None,
    };
    if let Some(lease) = &lease {
        builder = builder.lease(lease.clone());
    }
    Ok(Source {
        builder,
        demo: None,
        lease,
    })
}

/// The lease table, created if missing, through the same endpoint as DynamoDB.
async fn lease_table(args: &Args, config: &SdkConfig, table: &str) -> Result<LeaseTable, Failure> {
    let worker = args.worker_id.clone().unwrap_or_else(default_worker_id);
    let lease = LeaseTable::new(aws_sdk_dynamodb::Client::new(config), table, worker);
    lease
        .create_table()
        .await
        .map_err(|e| Failure::Fatal(format!("lease table {table}: {}", chain(&e))))?;
    Ok(lease)
}

/// The host name and the process id: unique among live processes.
fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    format!("{host}-{}", std::process::id())
}

/// The AWS configuration, with credentials checked now: a missing one is a one-line error
/// at once, not a minute of retried requests.
async fn aws_config(args: &Args) -> Result<SdkConfig, Failure> {
    let region = RegionProviderChain::first_try(args.region.clone().map(Region::new))
        .or_default_provider()
        .or_else(Region::new("us-east-1"));
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(region);
    if let Some(url) = &args.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let config = loader.load().await;
    if let Some(credentials) = config.credentials_provider()
        && let Err(e) = credentials.provide_credentials().await
    {
        return Err(Failure::Fatal(format!("no AWS credentials: {}", chain(&e))));
    }
    Ok(config)
}

async fn latest_stream_arn(config: &SdkConfig, table: &str) -> Result<String, Failure> {
    let described = aws_sdk_dynamodb::Client::new(config)
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| Failure::Fatal(format!("cannot describe table {table}: {}", chain(&e))))?;
    described
        .table()
        .and_then(|t| t.latest_stream_arn())
        .map(str::to_owned)
        .ok_or_else(|| {
            Failure::Fatal(format!(
                "table {table} has no stream: enable DynamoDB Streams on it"
            ))
        })
}
