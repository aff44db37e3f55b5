//! `lambda`: an AWS Lambda function for a DynamoDB trigger, built on `dynamodb_stream::lambda`,
//! that also runs locally over one event file.
//!
//! ```text
//! cargo run --example lambda --features lambda -- --event FILE [--fail-on-key PK]
//! ```
//!
//! The handler prints each change it is given as one `tail` JSON line on stdout (the format of
//! `shared/docs/tail-contract.md`, beside this repository, without `checkpoint`; `shard_id` is
//! `null`, as a Lambda record does not name its shard). With `--fail-on-key PK` the first
//! change whose key attribute `pk` is PK fails after its line is printed; the batch helper
//! stops there, so later changes are not printed: Lambda would deliver them again, from the
//! failed record on. A malformed record fails the same way, without a line.
//!
//! With `--event FILE` it reads one Lambda DynamoDB event (the JSON Lambda passes to the
//! function), runs the handler over it and prints the partial-batch response
//! (`{"batchItemFailures":[...]}`) as the last line. It exits 0 whatever the batch's outcome;
//! a file that cannot be read or is not a DynamoDB event is one line on stderr and exit 1; a
//! bad command line prints the usage and exits 2.
//!
//! Without `--event` it is the function itself: `lambda_runtime` serves invocations (the
//! event source mapping needs `FunctionResponseTypes: ["ReportBatchItemFailures"]`; see the
//! README's "In a Lambda"). Build it for Lambda like any Rust function, e.g. with cargo-lambda:
//! `cargo lambda build --release --example lambda --features lambda`. Outside Lambda, without
//! `--event`, it says so and exits 1. Warnings (a failed record and why) go to stderr;
//! `RUST_LOG` sets the filter.

#[path = "../tail/json.rs"]
mod json;

use std::io::{self, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aws_sdk_dynamodbstreams::types::AttributeValue;
use clap::Parser;
use dynamodb_stream::Change;
use dynamodb_stream::lambda::{DynamoDbEventResponse, Event, process_in_order};
use lambda_runtime::{LambdaEvent, service_fn};

use json::Line;

/// A Lambda function for a DynamoDB trigger; with --event, one batch from a file.
#[derive(Debug, Parser)]
#[command(name = "lambda", version)]
struct Args {
    /// Process the Lambda DynamoDB event in FILE and exit, instead of serving invocations
    #[arg(long, value_name = "FILE")]
    event: Option<PathBuf>,
    /// Fail the first change whose key attribute `pk` is PK
    #[arg(long, value_name = "PK")]
    fail_on_key: Option<String>,
}

/// What `lambda_runtime` reads from the environment, and panics without.
const RUNTIME_ENV: [&str; 4] = [
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
];

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .with_env_filter(filter)
        .init();
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
        .and_then(|runtime| match &args.event {
            Some(path) => runtime.block_on(local(path, args.fail_on_key.as_deref())),
            None => runtime.block_on(serve(args.fail_on_key)),
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("lambda: {message}");
            ExitCode::FAILURE
        }
    }
}

/// One batch from `path`: its lines, then the response as the last line.
async fn local(path: &Path, fail_on_key: Option<&str>) -> Result<(), String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let event: Event = serde_json::from_slice(&text)
        .map_err(|e| format!("{} is not a Lambda DynamoDB event: {e}", path.display()))?;
    let response = on_batch(event, fail_on_key).await;
    let line = serde_json::to_string(&response).map_err(|e| e.to_string())?;
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))
}

/// The Lambda function: one batch per invocation.
async fn serve(fail_on_key: Option<String>) -> Result<(), String> {
    if let Some(missing) = RUNTIME_ENV
        .iter()
        .find(|name| std::env::var_os(name).is_none())
    {
        return Err(format!(
            "not running in AWS Lambda ({missing} is not set); use --event FILE to process \
             one event locally"
        ));
    }
    let fail_on_key = fail_on_key.as_deref();
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| async move {
        Ok::<_, lambda_runtime::Error>(on_batch(event.payload, fail_on_key).await)
    }))
    .await
    .map_err(|e| format!("the Lambda runtime failed: {e}"))
}

/// The handler, through the crate's batch helper: in order, stopping at the first failure.
async fn on_batch(event: Event, fail_on_key: Option<&str>) -> DynamoDbEventResponse {
    process_in_order(event, async |change: &Change| handle(change, fail_on_key)).await
}

/// What the function does with one change: print it, and fail it if asked to.
fn handle(change: &Change, fail_on_key: Option<&str>) -> Result<(), String> {
    let mut line = serde_json::to_vec(&Line::new(change)).map_err(|e| e.to_string())?;
    line.push(b'\n');
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(&line)
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))?;
    match (fail_on_key, change.raw_keys().get("pk")) {
        (Some(pk), Some(AttributeValue::S(key))) if key == pk => {
            Err(format!("pk {pk:?}: failing as --fail-on-key asks"))
        }
        _ => Ok(()),
    }
}
