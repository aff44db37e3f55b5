//! `tail`: print a DynamoDB stream as JSON lines, in lineage order.
//!
//! ```text
//! cargo run --example tail                              # the demo: no AWS account needed
//! cargo run --example tail -- --table Orders --from trim-horizon --until-caught-up
//! cargo run --example tail -- --table Orders --from 2026-12-01T10:00:00Z   # created since then
//! cargo run --example tail -- --stream-arn arn:aws:dynamodb:… --checkpoint orders.ckpt
//! cargo run --example tail -- --endpoint-url http://127.0.0.1:5000 --table Orders  # moto
//! cargo run --example tail -- --table Orders --lease-table tail-leases   # one of several
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
//! With `--lease-table NAME` several `tail`s (or other consumers of the crate) share the stream:
//! each prints the events of the shards it holds, and saves its position in the table (made if
//! missing, through the DynamoDB endpoint) instead of a file.
//!
//! With `--until-caught-up` and stderr a terminal, a progress bar on stderr shows the shards
//! read to their end, the events printed, events/s and the lag, and one summary line follows
//! at the end; when stderr is not a terminal nothing of it is printed.
//!
//! `--limit` and `--until-caught-up` exit 0; so do Ctrl-C and SIGTERM, which stop reading,
//! flush, save and (with a lease table) hand every shard over, within 10 s; a second signal
//! exits at once. A closed stdout (`| head`) exits 0 too. A fatal error prints one line to stderr and exits
//! 1; a bad command line prints the usage and exits 2. Set `RUST_LOG` (e.g.
//! `RUST_LOG=dynamodb_stream=info`) for logs on stderr.

mod demo;
mod json;
mod output;
mod progress;
mod saver;
mod source;

use std::io::{self, IsTerminal as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodbstreams::primitives::{DateTime, DateTimeFormat};
use clap::{ArgGroup, CommandFactory as _, Parser};
use dynamodb_stream::{ChangeStream, Checkpoint, StartPosition};
use futures::StreamExt;
use tokio::time::MissedTickBehavior;

use demo::Demo;
use output::Output;
use progress::Progress;
use saver::Saver;

/// Pages are parsed in bulk and freed long after, often on another thread: glibc's allocator
/// spends a quarter of tail's time on that pattern, mimalloc a fraction of it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The longest time a printed line may wait in the buffer, and between saves.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// After a signal: stop, flush, save and release within this, or give up.
const SHUTDOWN_WITHIN: Duration = Duration::from_secs(9);

/// Print a DynamoDB stream as JSON lines, in lineage order.
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
    /// Where to start when no checkpoint exists: trim-horizon, latest, or an RFC 3339 time
    /// such as 2026-12-01T10:00:00Z (the records created at or after it, compared to the
    /// second) [default: latest; the demo's: trim-horizon]
    #[arg(long, value_name = "POSITION", value_parser = start)]
    from: Option<Start>,
    /// Resume from FILE if it exists, and save progress to it atomically as events are printed
    #[arg(long, value_name = "FILE", conflicts_with = "lease_table")]
    checkpoint: Option<PathBuf>,
    /// Exit 0 after printing N events
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    limit: Option<u64>,
    /// Exit 0 once every shard has been read to its current end
    #[arg(long)]
    until_caught_up: bool,
    /// Read the embedded stream simulator (the default when no endpoint, ARN or table is given)
    #[arg(long, conflicts_with_all = ["source", "endpoint_url", "lease_table"])]
    demo: bool,
    /// Add each event's whole-stream checkpoint token to its line
    #[arg(long)]
    line_checkpoints: bool,
    /// Share the stream with every other tail (or crate consumer) using this lease table:
    /// print the shards this process holds, save positions in the table (created if missing)
    #[arg(long, value_name = "NAME", requires = "source", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    lease_table: Option<String>,
    /// This process's name in the lease table (default: host name and pid)
    #[arg(long, value_name = "ID", requires = "lease_table", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    worker_id: Option<String>,
}

/// `--from`'s values: `trim-horizon`, `latest`, or an RFC 3339 time.
#[derive(Clone, Copy, Debug)]
enum Start {
    TrimHorizon,
    Latest,
    At(SystemTime),
}

impl Start {
    fn position(self) -> StartPosition {
        match self {
            Start::TrimHorizon => StartPosition::TrimHorizon,
            Start::Latest => StartPosition::Latest,
            Start::At(t) => StartPosition::AtTimestamp(t),
        }
    }
}

fn start(value: &str) -> Result<Start, String> {
    match value {
        "trim-horizon" => return Ok(Start::TrimHorizon),
        "latest" => return Ok(Start::Latest),
        _ => {}
    }
    DateTime::from_str(value, DateTimeFormat::DateTime)
        .ok()
        .and_then(|t| SystemTime::try_from(t).ok())
        .filter(|t| *t >= UNIX_EPOCH)
        .map(Start::At)
        .ok_or_else(|| {
            "expected trim-horizon, latest, or an RFC 3339 time after 1970 such as 2026-12-01T10:00:00Z".to_owned()
        })
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
    let (arn, config) = source::stream_arn(&args).await?;
    let mut saver = Saver::file(args.checkpoint.clone());
    let resume = saver.load(&arn).await?;
    let source = source::source(&args, arn.clone(), config.as_ref(), resume.as_ref()).await?;
    if let Some(lease) = source.lease {
        saver = Saver::Lease(lease);
    }
    let stream = source
        .builder
        .resume_from(resume)
        .build()
        .map_err(|e| Failure::Fatal(stream_failure(&e, &arn)))?;
    tracing::info!(stream = %arn, "tailing");
    let mut tail = Tail {
        stream: Some(stream),
        out: Output::stdout(args.line_checkpoints),
        saver,
        last: None,
        saved: None,
        arn,
        printed: 0,
        progress: Progress::new(args.until_caught_up),
    };
    tail.run(args.limit, source.demo.as_ref()).await
}

/// The running command: the stream, where it prints, and where it saves its position.
struct Tail {
    /// Dropped when tail stops: nothing more is read or delivered.
    stream: Option<ChangeStream>,
    out: Output,
    saver: Saver,
    /// The checkpoint of the last event printed.
    last: Option<Checkpoint>,
    /// The last checkpoint saved.
    saved: Option<Checkpoint>,
    arn: String,
    /// Events printed so far.
    printed: u64,
    /// `--until-caught-up` on a terminal: the progress bar on stderr.
    progress: Progress,
}

/// Why the loop ended.
enum End {
    Done,
    Signal,
}

impl Tail {
    async fn run(&mut self, limit: Option<u64>, demo: Option<&Demo>) -> Result<(), Failure> {
        let outcome = self.print(limit, demo).await;
        if outcome.is_ok() {
            self.progress.finish(self.printed, self.stream.as_ref());
        }
        if matches!(outcome, Ok(End::Signal)) {
            // A second signal exits at once; a stop that hangs (an unreachable lease table)
            // is cut short.
            tokio::spawn(async {
                shutdown().await;
                std::process::exit(130);
            });
            return match tokio::time::timeout(SHUTDOWN_WITHIN, self.stop()).await {
                Ok(result) => result,
                Err(_) => Err(Failure::Fatal(format!(
                    "could not save and release within {SHUTDOWN_WITHIN:?} of the signal (stream {})",
                    self.arn
                ))),
            };
        }
        // Even after a stream error: what was printed is saved, so a restart goes on from it.
        let stopped = self.stop().await;
        outcome.and(stopped).map(drop)
    }

    /// Prints events until the limit, the stream's end, an error or a signal.
    async fn print(&mut self, limit: Option<u64>, demo: Option<&Demo>) -> Result<End, Failure> {
        let mut ticks = tokio::time::interval(FLUSH_EVERY);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut signal = std::pin::pin!(shutdown());
        let Some(stream) = self.stream.as_mut() else {
            return Ok(End::Done);
        };
        loop {
            tokio::select! {
                next = stream.next() => match next {
                    Some(Ok(event)) => {
                        // On a write error nothing more is saved: what reached stdout is
                        // unknown, and the last save is known to be behind it.
                        self.out.print(&event).map_err(Failure::Stdout)?;
                        self.last = Some(event.into_checkpoint());
                        self.printed += 1;
                        if limit.is_some_and(|limit| self.printed >= limit) {
                            return Ok(End::Done);
                        }
                    }
                    Some(Err(e)) => return Err(Failure::Fatal(stream_failure(&e, &self.arn))),
                    None => return Ok(End::Done),
                },
                _ = ticks.tick() => {
                    self.progress.update(self.printed, stream);
                    let position = position(&self.last, stream);
                    save(&mut self.out, &self.saver, &mut self.saved, position).await?;
                    if demo.is_some_and(|demo| demo.finished(&position_of(&self.last, stream))) {
                        return Ok(End::Done);
                    }
                }
                () = &mut signal => return Ok(End::Signal),
            }
        }
    }

    /// Stops reading, flushes, saves the position of the last event printed, and hands the
    /// lease table's shards over.
    async fn stop(&mut self) -> Result<(), Failure> {
        let Some(mut stream) = self.stream.take() else {
            return Ok(());
        };
        let position = position(&self.last, &mut stream);
        drop(stream);
        save(&mut self.out, &self.saver, &mut self.saved, position).await?;
        self.saver.close().await
    }
}

/// After the last event printed; before any, the stream's start. Before the first listing a
/// fresh consumer knows no shard, and an empty checkpoint would resume at the trim horizon
/// rather than where this run started: then there is nothing to save.
fn position(last: &Option<Checkpoint>, stream: &mut ChangeStream) -> Option<Checkpoint> {
    let position = position_of(last, stream);
    (!position.positions().is_empty()).then_some(position)
}

fn position_of(last: &Option<Checkpoint>, stream: &mut ChangeStream) -> Checkpoint {
    match last {
        Some(last) => last.clone(),
        None => stream.checkpoint(),
    }
}

/// Flushes stdout, then saves `position` unless it is the one saved last: the saved position
/// never runs ahead of what reached stdout.
async fn save(
    out: &mut Output,
    saver: &Saver,
    saved: &mut Option<Checkpoint>,
    position: Option<Checkpoint>,
) -> Result<(), Failure> {
    out.flush().map_err(Failure::Stdout)?;
    let Some(position) = position.filter(|p| saved.as_ref() != Some(p)) else {
        return Ok(());
    };
    saver.save(&position).await?;
    *saved = Some(position);
    Ok(())
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
