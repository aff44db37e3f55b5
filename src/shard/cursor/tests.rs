use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodbstreams::primitives::DateTime;
use aws_sdk_dynamodbstreams::types::{AttributeValue, OperationType, Record, StreamRecord};

use super::*;
use crate::error::{ErrorKind, Result};

fn seq(n: u64) -> SequenceNumber {
    SequenceNumber::new(&format!("{:021}", n)).unwrap()
}

fn options() -> Options {
    Options::default()
}

const ARN: &str = "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/2026-11-21T00:00:00.000";

fn cursor(start: ShardStart) -> Cursor {
    Cursor::new(&ARN.into(), "shard-1".into(), start, &options())
}

/// A cursor in catch-up mode (`until_caught_up`).
fn catch_up_cursor(start: ShardStart) -> Cursor {
    let options = Options {
        catch_up: true,
        ..Options::default()
    };
    Cursor::new(&ARN.into(), "shard-1".into(), start, &options)
}

fn origin() -> Arc<Origin> {
    Origin::new(ARN.into(), Some("shard-1".into()))
}

/// A record of the shard with sequence number `n`, created at `created` (epoch seconds).
fn change(n: u64, created: i64) -> Result<Change> {
    let record = Record::builder()
        .event_id(format!("e{n}"))
        .event_name(OperationType::Insert)
        .dynamodb(
            StreamRecord::builder()
                .sequence_number(seq(n).as_str())
                .approximate_creation_date_time(DateTime::from_secs(created))
                .keys("pk", AttributeValue::S(format!("k{n}")))
                .build(),
        )
        .build();
    Change::from_record(&origin(), record)
}

fn malformed() -> Result<Change> {
    Change::from_record(&origin(), Record::builder().event_id("bad").build())
}

/// A page's records as the reader hands them over: the good ones up to the first malformed.
fn page(records: Vec<Result<Change>>) -> (Vec<Change>, Option<Error>) {
    let mut changes = Vec::new();
    for record in records {
        match record {
            Ok(change) => changes.push(change),
            Err(e) => return (changes, Some(e)),
        }
    }
    (changes, None)
}

impl Cursor {
    fn on_page_of(&mut self, page: (Vec<Change>, Option<Error>), next: Option<String>) -> Step {
        self.on_page(page.0, page.1, next)
    }
}

fn failure(fault: Fault) -> Failure {
    Failure {
        fault,
        error: Error::new(fault.kind(), "a call"),
    }
}

fn seqs(step: &Step) -> Vec<SequenceNumber> {
    let page = step.page.as_ref().expect("a page");
    page.changes
        .iter()
        .map(|c| c.sequence_number().clone())
        .collect()
}

#[test]
fn iterator_requests_never_fall_back_to_latest() {
    let mut latest = cursor(ShardStart::Latest { since: 0 });
    assert_eq!(latest.iterator_request(), (ShardIteratorType::Latest, None));
    // The first LATEST iterator is gone and nothing was read: trim horizon, filtered.
    assert_eq!(
        latest.iterator_request(),
        (ShardIteratorType::TrimHorizon, None)
    );
    latest.on_page_of(page(vec![change(7, 10)]), Some("next".into()));
    assert_eq!(
        latest.iterator_request(),
        (ShardIteratorType::AfterSequenceNumber, Some(seq(7)))
    );
    let mut after = cursor(ShardStart::After(seq(3)));
    for _ in 0..2 {
        assert_eq!(
            after.iterator_request(),
            (ShardIteratorType::AfterSequenceNumber, Some(seq(3)))
        );
    }
    for start in [ShardStart::TrimHorizon, ShardStart::Since(5)] {
        assert_eq!(
            cursor(start).iterator_request(),
            (ShardIteratorType::TrimHorizon, None)
        );
    }
}

#[test]
fn a_latest_start_whose_iterator_expired_unread_skips_what_came_before_it() {
    let mut c = cursor(ShardStart::Latest { since: 100 });
    let _ = c.iterator_request();
    let step = c.on_failure(failure(Fault::ExpiredIterator));
    assert!(matches!(step.then, Then::ReadOn) && step.page.is_none());
    assert_eq!(c.iterator_request(), (ShardIteratorType::TrimHorizon, None));
    let step = c.on_page_of(
        page(vec![change(1, 98), change(2, 100), change(3, 99)]),
        Some("next".into()),
    );
    // From the first record at or after the start on, everything is delivered.
    assert_eq!(seqs(&step), [seq(2), seq(3)]);
}

#[test]
fn records_already_read_are_not_delivered_twice() {
    let mut c = cursor(ShardStart::After(seq(5)));
    let step = c.on_page_of(
        page(vec![change(4, 0), change(5, 0), change(6, 0)]),
        Some("next".into()),
    );
    assert_eq!(seqs(&step), [seq(6)]);
    assert!(matches!(step.then, Then::ReadOn));
    assert_eq!(c.take_iterator().as_deref(), Some("next"));
}

#[test]
fn expiries_are_bounded_and_a_page_resets_the_count() {
    let mut c = cursor(ShardStart::TrimHorizon);
    for _ in 0..options().retry.max_retries {
        assert!(matches!(
            c.on_failure(failure(Fault::ExpiredIterator)).then,
            Then::ReadOn
        ));
    }
    c.on_page_of(page(vec![]), Some("next".into()));
    for _ in 0..options().retry.max_retries {
        assert!(matches!(
            c.on_failure(failure(Fault::ExpiredIterator)).then,
            Then::ReadOn
        ));
    }
    let Then::Fail(e) = c.on_failure(failure(Fault::ExpiredIterator)).then else {
        panic!("an endless run of expiries must end the reader");
    };
    assert_eq!(e.shard_id(), Some("shard-1"));
}

#[test]
fn empty_pages_back_off_and_never_end_an_open_shard() {
    let mut c = cursor(ShardStart::TrimHorizon);
    let mut delays = Vec::new();
    for _ in 0..5 {
        let step = c.on_page_of(page(vec![]), Some("next".into()));
        assert!(step.page.is_none(), "an empty page is not the shard's end");
        let Then::Sleep(delay) = step.then else {
            panic!("expected a sleep, got {:?}", step.then);
        };
        delays.push(delay.as_millis());
    }
    assert_eq!(delays, [250, 500, 1000, 2000, 2000]);
    // Records reset the back-off: a backlog is read back to back.
    let step = c.on_page_of(page(vec![change(1, 0)]), Some("next".into()));
    assert!(matches!(step.then, Then::ReadOn));
    let Then::Sleep(delay) = c.on_page_of(page(vec![]), Some("n".into())).then else {
        panic!("expected a sleep");
    };
    assert_eq!(delay, Duration::from_millis(250));
}

#[test]
fn a_closed_shard_reads_its_empty_pages_back_to_back_within_a_bound() {
    for catch_up in [false, true] {
        let options = Options {
            catch_up,
            ..Options::default()
        };
        let mut c = Cursor::new(
            &ARN.into(),
            "shard-1".into(),
            ShardStart::TrimHorizon,
            &options,
        );
        c.closed();
        for i in 0..CLOSED_EMPTY_READ_ON {
            let step = c.on_page_of(page(vec![]), Some("next".into()));
            assert!(step.page.is_none(), "an empty page is not the shard's end");
            assert!(
                matches!(step.then, Then::ReadOn),
                "empty page {i}: {:?}",
                step.then
            );
        }
        // Past the bound, the open shard's rules again: back off (or, catching up, end).
        let step = c.on_page_of(page(vec![]), Some("next".into()));
        assert!(!matches!(step.then, Then::ReadOn), "{:?}", step.then);
        // Its end is still the end, records first.
        let mut c = Cursor::new(
            &ARN.into(),
            "shard-1".into(),
            ShardStart::TrimHorizon,
            &options,
        );
        c.closed();
        let step = c.on_page_of(page(vec![change(1, 0)]), None);
        assert_eq!(
            step.page.map(|p| (p.end, p.changes.len())),
            Some((PageEnd::ShardEnd, 1))
        );
        assert!(matches!(step.then, Then::Done));
    }
}

#[test]
fn catch_up_ends_an_open_shard_after_three_empty_pages() {
    let mut c = catch_up_cursor(ShardStart::TrimHorizon);
    for _ in 0..2 {
        let step = c.on_page_of(page(vec![]), Some("next".into()));
        assert!(matches!(step.then, Then::Sleep(d) if d == Duration::from_millis(50)));
    }
    let step = c.on_page_of(page(vec![]), Some("next".into()));
    assert_eq!(step.page.map(|p| p.end), Some(PageEnd::CaughtUp));
    assert!(matches!(step.then, Then::Done));
}

#[test]
fn the_final_page_is_delivered_with_its_records() {
    let mut c = cursor(ShardStart::TrimHorizon);
    let step = c.on_page_of(page(vec![change(1, 0), change(2, 0)]), None);
    assert_eq!(seqs(&step), [seq(1), seq(2)]);
    assert_eq!(step.page.map(|p| p.end), Some(PageEnd::ShardEnd));
    assert!(matches!(step.then, Then::Done));
    // An empty final page still ends the shard.
    let step = cursor(ShardStart::TrimHorizon).on_page_of(page(vec![]), None);
    assert_eq!(step.page.map(|p| p.end), Some(PageEnd::ShardEnd));
}

#[test]
fn a_malformed_record_ends_the_reader_after_the_good_ones() {
    let mut c = cursor(ShardStart::TrimHorizon);
    let step = c.on_page_of(
        page(vec![change(1, 0), malformed(), change(3, 0)]),
        Some("next".into()),
    );
    assert_eq!(seqs(&step), [seq(1)]);
    let Then::Fail(e) = step.then else {
        panic!("expected a failure");
    };
    assert_eq!(e.kind(), ErrorKind::MalformedRecord);
    let step = cursor(ShardStart::TrimHorizon).on_page_of(page(vec![malformed()]), None);
    assert!(step.page.is_none(), "no empty page before the error");
}

#[test]
fn trimmed_data_fails_by_default_naming_where() {
    let mut c = cursor(ShardStart::After(seq(9)));
    let Then::Fail(e) = c.on_failure(failure(Fault::Trimmed)).then else {
        panic!("expected a failure");
    };
    assert_eq!(e.kind(), ErrorKind::TrimmedData);
    assert_eq!(e.shard_id(), Some("shard-1"));
    assert_eq!(e.sequence_number(), Some(&seq(9)));
}

#[test]
fn trimmed_data_under_the_skip_policy_goes_on_and_reports_the_gap_once() {
    let options = Options {
        trim_policy: crate::config::TrimPolicy::SkipToTrimHorizon,
        ..Options::default()
    };
    let mut c = Cursor::new(
        &ARN.into(),
        "shard-1".into(),
        ShardStart::After(seq(9)),
        &options,
    );
    assert!(matches!(
        c.on_failure(failure(Fault::Trimmed)).then,
        Then::ReadOn
    ));
    assert_eq!(c.iterator_request(), (ShardIteratorType::TrimHorizon, None));
    let step = c.on_page_of(page(vec![change(20, 0)]), Some("next".into()));
    let gap = step
        .page
        .and_then(|p| p.gap)
        .expect("the gap on the next page");
    assert_eq!(gap.after, Some(seq(9)));
    let step = c.on_page_of(page(vec![change(21, 0)]), Some("next".into()));
    assert!(step.page.unwrap().gap.is_none());
}

#[test]
fn other_faults_end_the_reader() {
    for fault in [
        Fault::Throttled,
        Fault::Server,
        Fault::Transport,
        Fault::NotFound,
        Fault::Invalid,
        Fault::Setup,
    ] {
        let Then::Fail(e) = cursor(ShardStart::TrimHorizon)
            .on_failure(failure(fault))
            .then
        else {
            panic!("{fault:?} must end the reader");
        };
        assert_eq!(e.kind(), fault.kind());
    }
}

#[test]
fn pages_of_skipped_records_are_a_backlog_not_an_idle_shard() {
    let mut c = catch_up_cursor(ShardStart::Since(100));
    for n in 0..5 {
        let step = c.on_page_of(page(vec![change(n, 50)]), Some("next".into()));
        assert!(step.page.is_none(), "page {n}");
        assert!(matches!(step.then, Then::ReadOn), "page {n}");
    }
    let step = c.on_page_of(page(vec![change(9, 100)]), Some("next".into()));
    assert_eq!(seqs(&step), [seq(9)]);
}
