//! The fast path (`Decoding::Raw`, the default) in the stream: it serves the pages (this file
//! fails if an SDK upgrade stops the capture), leaves the pages it declines to the SDK one by
//! one, and ends on a malformed record exactly as the SDK path does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use aws_sdk_dynamodbstreams::Client;
use dynamodb_stream::sim::{SimRecord, Simulator};
use dynamodb_stream::status::PageCounts;
use dynamodb_stream::{ChangeEvent, ChangeStream, Decoding, ErrorKind, Readers, StartPosition};
use futures::StreamExt;
use support::rewrite;
use support::sim::{item, key};

/// Two root shards of 30 records each; one splits after 10, its children get the rest.
fn stream_of_records() -> Simulator {
    let sim = Simulator::builder()
        .initial_shards(2)
        .describe_rate_limit(false)
        .build();
    let roots: Vec<String> = sim.shards().into_iter().map(|s| s.shard_id).collect();
    for (r, root) in roots.iter().enumerate() {
        for v in 0..10 {
            let pk = format!("r{r}-{}", v % 4);
            let record = SimRecord::new(dynamodb_stream::sim::RecordKind::Insert, key(&pk))
                .with_new_image(item(&pk, v));
            sim.append(root, record).unwrap();
        }
    }
    let children = sim.split(&roots[0], 2);
    for v in 10..30 {
        for (r, shard) in [(0, &children[v as usize % 2]), (1, &roots[1])] {
            let pk = format!("r{r}-{}", v % 4);
            let record = SimRecord::new(dynamodb_stream::sim::RecordKind::Modify, key(&pk))
                .with_new_image(item(&pk, v))
                .with_old_image(item(&pk, v - 1));
            sim.append(shard, record).unwrap();
        }
    }
    sim
}

/// The stream read to its current end through `client`: its events, the error that ended it
/// (if one did), and how its pages were decoded.
async fn read(
    sim: &Simulator,
    client: Client,
    decoding: Decoding,
) -> (Vec<ChangeEvent>, Option<dynamodb_stream::Error>, PageCounts) {
    let mut stream = ChangeStream::builder(client, sim.stream_arn())
        .start(StartPosition::TrimHorizon)
        .until_caught_up(true)
        .readers(Readers::Inline)
        .page_size(7)
        .decoding(decoding)
        .build()
        .unwrap();
    let mut events = Vec::new();
    let mut error = None;
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => events.push(event),
            Err(e) => error = Some(e),
        }
    }
    (events, error, stream.status().pages)
}

fn assert_same_events(a: &[ChangeEvent], b: &[ChangeEvent]) {
    assert_eq!(a.len(), b.len());
    for (a, b) in a.iter().zip(b) {
        assert_eq!(a.change(), b.change());
        assert_eq!(a.checkpoint().to_string(), b.checkpoint().to_string());
    }
}

#[tokio::test(start_paused = true)]
async fn raw_path_serves_the_pages() {
    let sim = stream_of_records();
    let (events, error, pages) = read(&sim, sim.client(), Decoding::default()).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(events.len(), 60);
    let calls = sim.calls().get_records;
    // If this fails after an SDK upgrade, the capture in `src/api/capture.rs` no longer gets
    // the pages: every page falls back to the SDK's parse (correct, but slow).
    assert_eq!(
        (pages.raw, pages.sdk, pages.fallback),
        (calls, 0, 0),
        "every GetRecords page should be parsed by the fast path"
    );
    let (sdk, _, sdk_pages) = read(&sim, sim.client(), Decoding::Sdk).await;
    assert_eq!(sdk_pages.sdk, sim.calls().get_records - calls);
    assert_eq!((sdk_pages.raw, sdk_pages.fallback), (0, 0));
    assert_same_events(&events, &sdk);
}

/// The same with the SDK's default client settings, stalled-stream protection included (it
/// wraps the response body before the crate sees it).
#[tokio::test(start_paused = true)]
async fn raw_path_serves_the_pages_with_the_sdk_defaults() {
    let sim = stream_of_records();
    let client = rewrite::client(&sim, |_, body| body);
    let (events, error, pages) = read(&sim, client, Decoding::Raw).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(events.len(), 60);
    assert_eq!((pages.raw, pages.fallback), (sim.calls().get_records, 0));
}

/// `1763000000` as `1.763000000E9`: the same instant, in the form moto writes.
fn float_times(body: &str) -> String {
    const FIELD: &str = "\"ApproximateCreationDateTime\":";
    let mut out = String::with_capacity(body.len() + 256);
    let mut rest = body;
    while let Some(at) = rest.find(FIELD) {
        let (head, tail) = rest.split_at(at + FIELD.len());
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        let (number, after) = tail.split_at(digits);
        out.push_str(head);
        out.push_str(&format!("{}.{}E{}", &number[..1], &number[1..], digits - 1));
        rest = after;
    }
    out.push_str(rest);
    out
}

#[tokio::test(start_paused = true)]
async fn declined_pages_are_decoded_by_the_sdk_page_by_page() {
    let sim = stream_of_records();
    let (expected, ..) = read(&sim, sim.client(), Decoding::Sdk).await;
    // Some pages in forms the parse declines (float times; a repeated key, which the SDK
    // reads as its last value), the others as the simulator wrote them.
    let client = rewrite::client(&sim, |n, body| match n % 3 {
        0 => float_times(&body),
        1 => body.replacen(
            "\"eventVersion\":\"1.1\"",
            "\"eventVersion\":\"0\",\"eventVersion\":\"1.1\"",
            1,
        ),
        _ => body,
    });
    let (events, error, pages) = read(&sim, client, Decoding::Raw).await;
    assert!(error.is_none(), "{error:?}");
    assert_same_events(&events, &expected);
    assert!(pages.raw > 0 && pages.fallback > 0, "{pages:?}");
    assert_eq!(pages.sdk, 0);
}

#[tokio::test(start_paused = true)]
async fn a_malformed_record_ends_the_stream_after_the_records_before_it_on_both_paths() {
    let sim = stream_of_records();
    // The first page of a shard: its third record gets an event name no one knows.
    let unknown_name = |n: usize, body: String| {
        if n > 0 {
            return body;
        }
        let third = body
            .match_indices("\"eventName\":\"INSERT\"")
            .nth(2)
            .unwrap()
            .0;
        let mut body = body;
        body.replace_range(third..third + 20, "\"eventName\":\"UPSERT\"");
        body
    };
    let mut results = Vec::new();
    for decoding in [Decoding::Raw, Decoding::Sdk] {
        let client = rewrite::client(&sim, unknown_name);
        results.push(read(&sim, client, decoding).await);
    }
    let (raw, raw_error, raw_pages) = &results[0];
    let (sdk, sdk_error, _) = &results[1];
    assert_eq!(
        raw_pages.fallback, 0,
        "a malformed record is not a declined page"
    );
    assert_same_events(raw, sdk);
    let (raw_error, sdk_error) = (raw_error.as_ref().unwrap(), sdk_error.as_ref().unwrap());
    assert_eq!(raw_error.kind(), ErrorKind::MalformedRecord);
    assert_eq!(raw_error.to_string(), sdk_error.to_string());
    assert_eq!(raw_error.shard_id(), sdk_error.shard_id());
}
