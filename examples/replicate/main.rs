//! `replicate`: keep an in-memory replica of a DynamoDB table, the right way.
//!
//! ```text
//! cargo run --example replicate -- --table Orders
//! cargo run --example replicate -- --endpoint-url http://127.0.0.1:5000 --table Orders  # moto
//! ```
//!
//! The usual recipe (bookmark the stream, scan the table, apply the stream) replays the
//! changes made during the scan on top of a scan that already holds some of them. This one
//! bookmarks the stream without reading it, scans with consistent reads, then applies each
//! change only if the scan did not already reflect it (see `replica.rs`), so the replica never
//! steps an item back in time and equals the table once the stream has caught up.
//!
//! The table's stream must record `NEW_AND_OLD_IMAGES`. Progress goes to stdout, one line a
//! second while changes arrive; `--until-caught-up` exits once the replica has caught up.

mod replica;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use aws_config::meta::region::RegionProviderChain;
use aws_config::{BehaviorVersion, Region};
use clap::Parser;
use dynamodb_stream::ChangeStream;
use futures::StreamExt;

use replica::{BoxError, Replica, Table};

/// Keep an in-memory replica of a DynamoDB table through its stream.
#[derive(Debug, Parser)]
#[command(name = "replicate", version)]
struct Args {
    /// The table to replicate
    #[arg(long, value_name = "NAME")]
    table: String,
    /// DynamoDB and DynamoDB Streams endpoint (default: AWS, from the environment)
    #[arg(long, value_name = "URL")]
    endpoint_url: Option<String>,
    /// Default: from the environment, else us-east-1
    #[arg(long, value_name = "REGION")]
    region: Option<String>,
    /// Items per Scan request
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(i32).range(1..))]
    page_size: i32,
    /// Exit once the replica has caught up with the stream
    #[arg(long)]
    until_caught_up: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and each of its sources.
            let mut line = e.to_string();
            let mut source = e.source();
            while let Some(cause) = source {
                line = format!("{line}: {cause}");
                source = cause.source();
            }
            eprintln!("replicate: {}", line.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), BoxError> {
    let region = RegionProviderChain::first_try(args.region.map(Region::new))
        .or_default_provider()
        .or_else(Region::new("us-east-1"));
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(region);
    if let Some(url) = &args.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let config = loader.load().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let streams = aws_sdk_dynamodbstreams::Client::new(&config);

    let table = Table::describe(&dynamodb, &args.table).await?;
    let bookmark = replica::bookmark(streams.clone(), &table.stream_arn)?;
    let mut replica = Replica::new(&table);
    replica.scan(&dynamodb, &table.name, args.page_size).await?;
    report(&replica, &table);

    let mut changes = ChangeStream::builder(streams, &table.stream_arn)
        .resume_from(bookmark)
        .until_caught_up(args.until_caught_up)
        .build()?;
    let mut reported = Instant::now();
    while let Some(event) = changes.next().await {
        replica.apply(&event?);
        if reported.elapsed() >= Duration::from_secs(1) {
            report(&replica, &table);
            reported = Instant::now();
        }
    }
    report(&replica, &table);
    Ok(())
}

fn report(replica: &Replica, table: &Table) {
    println!(
        "{}: {} items (scanned {}; stream changes applied {}, already in the scan {})",
        table.name,
        replica.items().len(),
        replica.scanned,
        replica.applied,
        replica.skipped
    );
}
