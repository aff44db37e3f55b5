//! `tail`: print a DynamoDB stream as JSON lines, in lineage order, with a checkpoint on each.
//!
//! ```text
//! cargo run --example tail                              # the demo: no AWS account needed
//! cargo run --example tail -- --table Orders --from trim-horizon --until-caught-up
//! cargo run --example tail -- --stream-arn arn:aws:dynamodb:… --checkpoint orders.ckpt
//! cargo run --example tail -- --endpoint-url http://127.0.0.1:5000 --table Orders  # moto
//! ```
//!
//! Its flags and output are a contract (`shared/docs/tail-contract.md`, beside this repository): one JSON object per event on
//! stdout, diagnostics on stderr only, and a `--checkpoint` file that never runs ahead of what
//! reached stdout. To a terminal each line is flushed as it is printed; to a pipe or a file
//! output is buffered and flushed every 100 ms, before each checkpoint save and on exit. The
//! checkpoint is saved after a flush, at most every 100 ms and on exit, by writing a temporary
//! file beside it and renaming it over: after a `kill -9` at any instant, a restart prints
//! again at most what was printed since the last save, and skips nothing.
//!
//! With no endpoint, ARN or table (or with `--demo`) it reads the crate's stream simulator:
//! a scripted `orders` table written to for about four seconds while its first shard splits
//! in two and one child rolls over. The demo starts at the trim horizon unless `--from` says
//! otherwise, and exits once it has printed everything the script wrote (its own meaning of
//! `--until-caught-up`). It is deterministic, so `--checkpoint` resumes it across runs.
//!
//! `--limit` and `--until-caught-up` exit 0; so do Ctrl-C and SIGTERM, after a final flush
//! and save, and a closed stdout (`| head`). A fatal error prints one line to stderr and exits
//! 1; a bad command line prints the usage and exits 2. Set `RUST_LOG` (e.g.
//! `RUST_LOG=dynamodb_stream=info`) for logs on stderr.

mod demo;
mod json;
mod output;

use std::io::{self, IsTerminal as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use aws_config::meta::region::RegionProviderChain;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodbstreams::config::ProvideCredentials as _;
use clap::{ArgGroup, CommandFactory as _, Parser, ValueEnum};
use dynamodb_stream::{ChangeStream, ChangeStreamBuilder, Checkpoint, StartPosition};
use futures::StreamExt;
use tokio::time::MissedTickBehavior;

use demo::Demo;
use output::{CheckpointFile, Output};

/// Pages are parsed in bulk and freed long after, often on another thread: glibc's allocator
/// spends a quarter of tail's time on that pattern, mimalloc a fraction of it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The longest time a printed line may wait in the buffer, and between checkpoint saves.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Print a DynamoDB stream as JSON lines, in lineage order, with a checkpoint on each line.
#[derive(Debug, Parser)]
#[command(name = "tail", version)]
#[command(group(ArgGroup::new("source").args(["stream_arn", "table"])))]
struct Args {
    /// DynamoDB Streams endpoint (default: AWS, from the environment)
    #[arg(long, value_name = "URL", requires = "source", value_parser = endpoint)]
    endpoint_url: Option<String>,
    /// Default: from the environment, else us-east-1
    #[arg(long, value_name = "REGION", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    region: Option<String>,
    /// The stream to read
    #[arg(long, value_name = "ARN")]
    stream_arn: Option<String>,
    /// Read the table's latest stream (DescribeTable's LatestStreamArn); the endpoint serves
    /// DynamoDB too
    #[arg(long, value_name = "NAME")]
    table: Option<String>,
    /// Where to start when no checkpoint exists [default: latest; the demo's: trim-horizon]
    #[arg(long, value_enum, value_name = "POSITION")]
    from: Option<Start>,
    /// Resume from FILE if it exists, and save progress to it atomically as events are printed
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
    /// Exit 0 after printing N events
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    limit: Option<u64>,
    /// Exit 0 once every shard has been read to its current end
    #[arg(long)]
    until_caught_up: bool,
    /// Read the embedded stream simulator (the default when no endpoint, ARN or table is given)
    #[arg(long, conflicts_with_all = ["source", "endpoint_url"])]
    demo: bool,
}

/// `--from`'s values: `trim-horizon`, `latest`.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Start {
    TrimHorizon,
    Latest,
}

impl Start {
    fn position(self) -> StartPosition {
        match self {
            Start::TrimHorizon => StartPosition::TrimHorizon,
            Start::Latest => StartPosition::Latest,
        }
    }
}

fn endpoint(url: &str) -> Result<String, String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(url.to_owned())
    } else {
        Err("expected an http:// or https:// URL".to_owned())
    }
}

fn main() -> ExitCode {
    let args = parse_args();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // aws-config warns at length about every credential source it tries; the error that
        // follows says what matters.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,aws_config=error"));
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .with_env_filter(filter)
        .init();
    let result = tokio::runtime::Runtime::new()
        .map_err(|e| Failure::Fatal(format!("cannot start the async runtime: {e}")))
        .and_then(|runtime| runtime.block_on(run(args)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Whoever closed our stdout wants no more: a normal way to stop.
        Err(Failure::Stdout(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(Failure::Stdout(e)) => {
            eprintln!("tail: cannot write to stdout: {e}");
            ExitCode::FAILURE
        }
        Err(Failure::Fatal(message)) => {
            eprintln!("tail: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The command line, or the usage and exit code 2. Clap prints the usage with most errors
/// but not with a bad value; this adds it there too.
fn parse_args() -> Args {
    Args::try_parse().unwrap_or_else(|e| {
        use clap::error::ErrorKind::{InvalidValue, ValueValidation};
        if matches!(e.kind(), InvalidValue | ValueValidation) {
            let _ = e.print();
            eprintln!("\n{}", Args::command().render_usage());
            std::process::exit(e.exit_code());
        }
        e.exit()
    })
}

enum Failure {
    /// Writing or flushing stdout failed: nothing more can be printed or saved.
    Stdout(io::Error),
    /// Anything else, as one line.
    Fatal(String),
}

async fn run(args: Args) -> Result<(), Failure> {
    let mut file = args.checkpoint.clone().map(CheckpointFile::new);
    let resume = match &mut file {
        Some(file) => file.load().map_err(Failure::Fatal)?,
        None => None,
    };
    let (builder, demo) = source(&args, resume.as_ref()).await?;
    let arn = builder.stream_arn().to_owned();
    let stream = builder
        .resume_from(resume)
        .build()
        .map_err(|e| Failure::Fatal(stream_failure(&e, &arn)))?;
    tracing::info!(stream = %arn, "tailing");
    let mut tail = Tail {
        stream,
        out: Output::stdout(),
        file,
        last: None,
        arn,
    };
    tail.run(args.limit, demo.as_ref()).await
}

/// The consumer to run: over the demo, or over AWS (or the endpoint given).
async fn source(
    args: &Args,
    resume: Option<&Checkpoint>,
) -> Result<(ChangeStreamBuilder, Option<Demo>), Failure> {
    if args.demo || (args.stream_arn.is_none() && args.table.is_none()) {
        let demo = Demo::start(resume);
        let sim = demo.simulator();
        let builder = ChangeStream::builder(sim.client(), sim.stream_arn())
            .start(args.from.unwrap_or(Start::TrimHorizon).position())
            .poll_interval(Duration::from_millis(50))
            .max_poll_interval(Duration::from_millis(250));
        return Ok((builder, Some(demo)));
    }
    let config = aws_config(args).await?;
    let arn = match (&args.stream_arn, &args.table) {
        (Some(arn), _) => arn.clone(),
        (None, Some(table)) => latest_stream_arn(&config, table).await?,
        (None, None) => return Err(Failure::Fatal("no stream to read".to_owned())),
    };
    let client = aws_sdk_dynamodbstreams::Client::new(&config);
    let builder = ChangeStream::builder(client, arn)
        .start(args.from.unwrap_or(Start::Latest).position())
        .until_caught_up(args.until_caught_up);
    Ok((builder, None))
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

/// The running command: the stream, where it prints, and where it saves its position.
struct Tail {
    stream: ChangeStream,
    out: Output,
    file: Option<CheckpointFile>,
    /// The checkpoint of the last event printed.
    last: Option<Checkpoint>,
    arn: String,
}

impl Tail {
    async fn run(&mut self, limit: Option<u64>, demo: Option<&Demo>) -> Result<(), Failure> {
        let mut ticks = tokio::time::interval(FLUSH_EVERY);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut stop = std::pin::pin!(shutdown());
        let mut printed = 0u64;
        let outcome = loop {
            tokio::select! {
                next = self.stream.next() => match next {
                    Some(Ok(event)) => {
                        // On a write error nothing more is saved: what reached stdout is
                        // unknown, and the last save is known to be behind it.
                        self.out.print(&event).map_err(Failure::Stdout)?;
                        self.last = Some(event.into_checkpoint());
                        printed += 1;
                        if limit.is_some_and(|limit| printed >= limit) {
                            break Ok(());
                        }
                    }
                    Some(Err(e)) => break Err(Failure::Fatal(stream_failure(&e, &self.arn))),
                    None => break Ok(()),
                },
                _ = ticks.tick() => {
                    self.save()?;
                    if demo.is_some_and(|demo| demo.finished(&self.position())) {
                        break Ok(());
                    }
                }
                () = &mut stop => break Ok(()),
            }
        };
        // Even after a stream error: what was printed is saved, so a restart goes on from it.
        self.save()?;
        outcome
    }

    /// Flushes stdout, then saves the position of the last event printed.
    fn save(&mut self) -> Result<(), Failure> {
        self.out.flush().map_err(Failure::Stdout)?;
        let position = self.position();
        if let Some(file) = &mut self.file {
            // Before the first listing a fresh consumer knows no shard, and an empty checkpoint
            // would resume at the trim horizon rather than where this run started.
            if !position.positions().is_empty() {
                file.save(&position).map_err(Failure::Fatal)?;
            }
        }
        Ok(())
    }

    /// After the last event printed; before any, the stream's start.
    fn position(&mut self) -> Checkpoint {
        match &self.last {
            Some(last) => last.clone(),
            None => self.stream.checkpoint(),
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM; never if the signals cannot be watched.
async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            },
            Err(_) => std::future::pending().await,
        }
    }
    #[cfg(not(unix))]
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// One line for a stream error: what failed (the error names its shard) and every cause
/// below it, then which stream.
fn stream_failure(e: &dynamodb_stream::Error, arn: &str) -> String {
    format!("{} (stream {arn})", chain(e))
}

/// An error and each of its sources, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut next = e.source();
    while let Some(source) = next {
        line = format!("{line}: {source}");
        next = source.source();
    }
    line.replace('\n', " ")
}
