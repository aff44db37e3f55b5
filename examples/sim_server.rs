//! `sim_server`: the crate's stream simulator served over HTTP/1.1 on a loopback port, so that
//! any AWS SDK (the Rust one, the JavaScript v2/v3 ones, ...) can read the same scripted stream.
//!
//! ```text
//! cargo run --release --example sim_server -- --shards 64 --records 2000 --closed
//! ```
//!
//! It speaks the DynamoDB Streams JSON 1.0 protocol (`X-Amz-Target:
//! DynamoDBStreams_20120810.<Operation>`) by handing every request to
//! [`Simulator::handle`](dynamodb_stream::sim::Simulator::handle), and answers DynamoDB's
//! `DescribeTable` with the stream ARN, so that `tail --table` works too. Signatures are not
//! checked: any credentials do.
//!
//! stdout carries three lines, then nothing: the endpoint URL (`http://127.0.0.1:<port>`,
//! the chosen port when `--port 0`), the stream ARN, and `records <total>`. Logs go to stderr.
//!
//! The stream: `--shards` root shards with `--records` records each, of about
//! `--record-bytes` bytes (the item size DynamoDB counts). With `--split`, every other shard
//! gets half its records, then splits into two children that get a quarter each; every item key
//! lives in the parent and in one child, with an attribute `v` that increases along the lineage
//! (a consumer keeps lineage order if `v` increases per key in its output). With `--closed`
//! every leaf shard is closed after writing, so a drain from the trim horizon has an end.
//! With `--live N` it keeps writing N more records after it starts serving (a key's `v` grows
//! with every write), splitting open shards `--live-splits` times on the way.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};

use bytes::Bytes;
use clap::Parser;
use dynamodb_stream::sim::{AttributeValue, Item, RecordKind, SimRecord, Simulator};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Serve the stream simulator on a loopback port.
#[derive(Debug, Parser)]
#[command(name = "sim_server")]
struct Args {
    /// Port on 127.0.0.1 (0: pick a free one; the address is the first line on stdout)
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Root shards
    #[arg(long, default_value_t = 4)]
    shards: usize,
    /// Records per root shard (with --split, spread over the parent and its children)
    #[arg(long, default_value_t = 1000)]
    records: usize,
    /// Approximate size of each record's item, in bytes
    #[arg(long, default_value_t = 200)]
    record_bytes: usize,
    /// Split every other shard into two children, spreading its records over the three
    #[arg(long)]
    split: bool,
    /// Close every leaf shard after writing, so that a drain has an end
    #[arg(long)]
    closed: bool,
    /// Seed of the simulator's random parts (sequence-number gaps)
    #[arg(long, default_value_t = 0x5eed)]
    seed: u64,
    /// Distinct item keys per root shard
    #[arg(long, default_value_t = 100)]
    keys: usize,
    /// Live mode: after serving starts, write this many more records (keys `live-k<j mod
    /// keys>`, `v = j`), one every --live-every-ms, splitting open shards on the way
    #[arg(long, default_value_t = 0)]
    live: usize,
    /// Live mode: milliseconds between two writes
    #[arg(long, default_value_t = 5)]
    live_every_ms: u64,
    /// Live mode: how many times an open shard splits while the writes go on
    #[arg(long, default_value_t = 0)]
    live_splits: usize,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    // One thread: the simulator serves pre-rendered records, and the consumers being compared
    // should have the rest of the machine.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let sim = Simulator::builder()
        .initial_shards(args.shards)
        .seed(args.seed)
        .build();
    let total = populate(&sim, &args)?;
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, args.port))).await?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "http://{addr}")?;
        writeln!(out, "{}", sim.stream_arn())?;
        writeln!(out, "records {}", total + args.live)?;
        out.flush()?;
    }
    eprintln!(
        "sim_server: {} shards ({} listed), {total} records, serving on http://{addr}",
        args.shards,
        sim.shards().len()
    );
    if args.live > 0 {
        tokio::spawn(live(
            sim.clone(),
            args.live,
            args.keys,
            args.live_every_ms,
            args.live_splits,
        ));
    }
    loop {
        let (socket, _) = listener.accept().await?;
        let _ = socket.set_nodelay(true);
        let sim = sim.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(sim.clone(), req));
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(socket), service)
                .await
            {
                eprintln!("sim_server: connection: {e}");
            }
        });
    }
}

/// One request: the target operation from `X-Amz-Target`, the JSON body, the simulator's answer.
async fn answer(
    sim: Simulator,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (status, body) = match req.into_body().collect().await {
        Err(e) => (400, error_body("SerializationException", &e.to_string())),
        Ok(body) => {
            let body = body.to_bytes();
            match target.strip_prefix("DynamoDB_20120810.") {
                Some("DescribeTable") => (200, describe_table(&sim)),
                Some(op) => (400, error_body("UnknownOperationException", op)),
                None => sim.handle(&target, &body),
            }
        }
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    headers.insert(
        "x-amzn-requestid",
        hyper::header::HeaderValue::from_static("00000000-0000-0000-0000-000000000000"),
    );
    Ok(response)
}

fn error_body(kind: &str, message: &str) -> Bytes {
    Bytes::from(
        serde_json::json!({ "__type": format!("com.amazon.coral.service#{kind}"), "message": message })
            .to_string(),
    )
}

/// Just enough of DynamoDB's `DescribeTable` for a consumer that looks up the stream by table.
fn describe_table(sim: &Simulator) -> Bytes {
    let arn = sim.stream_arn();
    let label = arn.rsplit('/').next().unwrap_or_default().to_owned();
    Bytes::from(
        serde_json::json!({
            "Table": {
                "TableName": sim.table_name(),
                "TableStatus": "ACTIVE",
                "KeySchema": [{ "AttributeName": "pk", "KeyType": "HASH" }],
                "AttributeDefinitions": [{ "AttributeName": "pk", "AttributeType": "S" }],
                "StreamSpecification": { "StreamEnabled": true, "StreamViewType": "NEW_AND_OLD_IMAGES" },
                "LatestStreamArn": arn,
                "LatestStreamLabel": label,
            }
        })
        .to_string(),
    )
}

/// Live mode: `records` writes spread over `keys` keys, `splits` splits among them.
async fn live(sim: Simulator, records: usize, keys: usize, every_ms: u64, splits: usize) {
    let split_every = records / (splits + 1);
    let mut pace = tokio::time::interval(std::time::Duration::from_millis(every_ms.max(1)));
    for j in 0..records {
        pace.tick().await;
        if split_every > 0 && j > 0 && j % split_every == 0 && j / split_every <= splits {
            let open: Vec<String> = sim
                .shards()
                .into_iter()
                .filter(|s| s.open)
                .map(|s| s.shard_id)
                .collect();
            if let Some(shard) = open.get(j % open.len().max(1)) {
                let children = sim.split(shard, 2);
                eprintln!("sim_server: split {shard} into {children:?}");
            }
        }
        let pk = format!("live-k{:04}", j % keys.max(1));
        let mut item = Item::from([("pk".to_owned(), AttributeValue::S(pk))]);
        item.insert("v".to_owned(), AttributeValue::N(j.to_string()));
        sim.put_item(item);
    }
    eprintln!("sim_server: {records} live records written");
}

/// Writes the scripted records; returns how many.
fn populate(sim: &Simulator, args: &Args) -> Result<usize, Box<dyn std::error::Error>> {
    let roots: Vec<String> = sim.shards().into_iter().map(|s| s.shard_id).collect();
    let keys = args.keys.max(2) & !1; // even, so that key parity picks the child
    let mut total = 0;
    for (lineage, root) in roots.iter().enumerate() {
        let record = |j: usize| make_record(lineage, j, keys, args.record_bytes);
        let split = args.split && lineage % 2 == 0;
        if !split {
            for j in 0..args.records {
                sim.append(root, record(j))?;
            }
            total += args.records;
            if args.closed {
                sim.close_shard(root);
            }
            continue;
        }
        let half = args.records / 2;
        for j in 0..half {
            sim.append(root, record(j))?;
        }
        let children = sim.split(root, 2);
        // Key parity picks the child, so each key lives in the parent and one child only.
        for j in half..args.records {
            sim.append(&children[(j % keys) % 2], record(j))?;
        }
        total += args.records;
        if args.closed {
            for child in &children {
                sim.close_shard(child);
            }
        }
    }
    Ok(total)
}

/// Record `j` of lineage `lineage`: key `l<lineage>-k<j mod keys>`, `v = j`, and a payload
/// that brings the item to about `bytes` bytes (attribute names plus values, as DynamoDB
/// counts).
fn make_record(lineage: usize, j: usize, keys: usize, bytes: usize) -> SimRecord {
    let pk = format!("l{lineage:04}-k{:04}", j % keys);
    let v = j.to_string();
    let fixed = "pk".len() + pk.len() + "v".len() + v.len() + "payload".len();
    let payload = "x".repeat(bytes.saturating_sub(fixed));
    let key = Item::from([("pk".to_owned(), AttributeValue::S(pk))]);
    let mut image = key.clone();
    image.insert("v".to_owned(), AttributeValue::N(v));
    image.insert("payload".to_owned(), AttributeValue::S(payload));
    let kind = if j < keys {
        RecordKind::Insert
    } else {
        RecordKind::Modify
    };
    SimRecord::new(kind, key).with_new_image(image)
}
