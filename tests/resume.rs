//! Resuming from the checkpoint of any event yields exactly the events after it, in every
//! shard, across splits; checkpoints survive their text form.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use dynamodb_stream::sim::Simulator;
use dynamodb_stream::{ChangeEvent, Checkpoint, ShardPosition, StartPosition};
use futures::StreamExt;
use proptest::prelude::*;
use support::sim::*;

/// A stream with `writes` records over random splits (1 to 3 children), all written up front.
fn scripted(seed: u64, writes: u64, split_every: u64) -> Simulator {
    let sim = Simulator::builder()
        .initial_shards(2)
        .max_page(3)
        .seed(seed)
        .build();
    for v in 0..writes {
        sim.put_item(item(&format!("k{}", v % 7), v));
        if v % split_every == split_every - 1 {
            let open: Vec<_> = sim.shards().into_iter().filter(|s| s.open).collect();
            let shard = &open[(v as usize) % open.len()].shard_id;
            sim.split(shard, 1 + (v as usize % 3));
        }
    }
    sim
}

fn per_shard(events: &[ChangeEvent]) -> HashMap<String, Vec<(String, u64)>> {
    let mut out: HashMap<String, Vec<(String, u64)>> = HashMap::new();
    for ev in events {
        out.entry(ev.shard_id().to_owned())
            .or_default()
            .push(pk_v(ev));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn resuming_from_event_n_yields_exactly_the_rest(
        seed in any::<u64>(),
        writes in 1u64..60,
        split_every in 3u64..20,
        cut in any::<prop::sample::Index>(),
    ) {
        paused_runtime().block_on(async {
            let sim = scripted(seed, writes, split_every);
            let mut first = builder(&sim).build().unwrap();
            let all = take(&mut first, writes as usize).await;
            drop(first);
            let n = cut.index(all.len());
            // Through the text form, as a file would hold it.
            let token: Checkpoint = all[n].checkpoint().to_string().parse().unwrap();
            let mut second = builder(&sim).resume_from(token).build().unwrap();
            let rest = take(&mut second, all.len() - n - 1).await;
            let extra = tokio::time::timeout(Duration::from_secs(5), second.next()).await;
            prop_assert!(extra.is_err(), "re-delivered more than the rest: {:?}", extra);
            prop_assert_eq!(per_shard(&rest), per_shard(&all[n + 1..]));
            assert_per_key_order(&rest);
            assert_parents_first(&sim, &rest);
            Ok(())
        })?;
    }
}

/// A consumer that saves only every k-th checkpoint re-reads only what came after its save.
#[tokio::test(start_paused = true)]
async fn saving_every_kth_token_loses_nothing() {
    let sim = scripted(3, 50, 9);
    let mut stream = builder(&sim).build().unwrap();
    let all = take(&mut stream, 50).await;
    let saved = all[29].checkpoint().clone(); // saved at event 30, then crashed at event 37
    drop(stream);
    let mut again = builder(&sim).resume_from(saved).build().unwrap();
    let rest = take(&mut again, 20).await;
    assert_eq!(per_shard(&rest), per_shard(&all[30..]));
}

/// The final event of a finished shard records it as finished, and restarting after the very
/// last event reads nothing again.
#[tokio::test(start_paused = true)]
async fn resuming_after_the_last_event_delivers_nothing() {
    let sim = scripted(5, 12, 4);
    let mut stream = builder(&sim).build().unwrap();
    let all = take(&mut stream, 12).await;
    let last = all.last().unwrap().checkpoint().clone();
    let finished = last
        .positions()
        .values()
        .filter(|p| matches!(p, ShardPosition::Finished))
        .count();
    assert!(
        finished >= 1,
        "split parents are recorded as finished: {last:?}"
    );
    let mut again = builder(&sim).resume_from(last).build().unwrap();
    let extra = tokio::time::timeout(Duration::from_secs(10), again.next()).await;
    assert!(extra.is_err(), "{extra:?}");
}

/// A checkpoint taken while a `LATEST`-started shard has delivered nothing resumes that shard
/// from the start instant: writes made after the original start are not lost, older ones are
/// not delivered.
#[tokio::test(start_paused = true)]
async fn latest_start_resumes_without_losing_quiet_shards() {
    let sim = Simulator::builder().initial_shards(2).seed(11).build();
    for v in 0..6 {
        sim.put_item(item(&format!("old{v}"), v));
    }
    // Creation times have whole-second resolution, and a LATEST start is anchored two
    // seconds early for clock skew: step past both.
    std::thread::sleep(Duration::from_millis(3100));
    let mut stream = builder(&sim).start(StartPosition::Latest).build().unwrap();
    let quiet = tokio::time::timeout(Duration::from_secs(1), stream.next()).await;
    assert!(quiet.is_err(), "old records were delivered: {quiet:?}");
    // New writes to several keys, so both shards receive some.
    let mut written = Vec::new();
    for v in 100..112 {
        let pk = format!("new{v}");
        sim.put_item(item(&pk, v));
        written.push((pk, v));
    }
    let first = take(&mut stream, 1).await;
    let token = first[0].checkpoint().clone();
    assert!(
        matches!(token.position("quiet"), Some(ShardPosition::LatestSince(_))),
        "shards that delivered nothing are covered by the start: {token:?}"
    );
    drop(stream);
    let mut again = builder(&sim).resume_from(token).build().unwrap();
    let rest = take(&mut again, written.len() - 1).await;
    let extra = tokio::time::timeout(Duration::from_secs(5), again.next()).await;
    assert!(extra.is_err(), "{extra:?}");
    let mut got: Vec<(String, u64)> = first.iter().chain(&rest).map(pk_v).collect();
    got.sort_by_key(|(_, v)| *v);
    assert_eq!(got, written);
}

/// `ChangeStream::checkpoint` is the position after the last event returned.
#[tokio::test(start_paused = true)]
async fn stream_checkpoint_matches_the_last_event() {
    let sim = scripted(9, 10, 100);
    let mut stream = builder(&sim).build().unwrap();
    let events = take(&mut stream, 4).await;
    assert_eq!(&stream.checkpoint(), events[3].checkpoint());
    assert_eq!(
        stream
            .status()
            .shards
            .iter()
            .map(|s| s.records)
            .sum::<u64>(),
        4
    );
    let _ = StartPosition::TrimHorizon;
}

/// A checkpoint taken right after `build()`, before anything was read, is already a `LATEST`
/// bookmark: resuming from it delivers what was written after the build, and nothing older.
#[tokio::test(start_paused = true)]
async fn a_latest_checkpoint_taken_before_reading_is_a_bookmark() {
    let sim = Simulator::builder().initial_shards(3).seed(12).build();
    for v in 0..5 {
        sim.put_item(item(&format!("old{v}"), v));
    }
    std::thread::sleep(Duration::from_millis(3100));
    let mut stream = builder(&sim).start(StartPosition::Latest).build().unwrap();
    let bookmark = stream.checkpoint();
    drop(stream);
    let bookmark: Checkpoint = bookmark.to_string().parse().unwrap();
    for v in 10..20 {
        sim.put_item(item(&format!("new{v}"), v));
    }
    let mut resumed = builder(&sim).resume_from(bookmark).build().unwrap();
    let events = take(&mut resumed, 10).await;
    let extra = tokio::time::timeout(Duration::from_secs(5), resumed.next()).await;
    assert!(extra.is_err(), "{extra:?}");
    let mut vs: Vec<u64> = events.iter().map(|e| pk_v(e).1).collect();
    vs.sort_unstable();
    assert_eq!(vs, (10..20).collect::<Vec<_>>());
}

/// A finished shard leaves the checkpoint once its child has a position, so tokens hold the
/// shards being read, not every shard of the day; resuming infers the finished ancestors and
/// reads none of them again.
#[tokio::test(start_paused = true)]
async fn finished_ancestors_leave_the_checkpoint_and_are_not_read_again() {
    let sim = Simulator::builder()
        .initial_shards(1)
        .max_page(4)
        .seed(41)
        .build();
    // Ten records per generation: four rollovers, a split in two, then one more rollover.
    let mut v = 0;
    for generation in 0..6 {
        for _ in 0..10 {
            sim.put_item(item(&format!("k{}", v % 3), v));
            v += 1;
        }
        let shard = open_shards(&sim)[0].clone();
        sim.split(&shard, if generation == 4 { 2 } else { 1 });
    }
    let events = drain_ok(builder(&sim).until_caught_up(true).build().unwrap()).await;
    assert_eq!(events.len(), 60);
    let last = events.last().unwrap().checkpoint().clone();
    let listed: Vec<&str> = last.positions().into_keys().collect();
    // The last generation's two children at most, not the 8 shards of the chain.
    assert!(listed.len() <= 2, "{listed:?}");
    for at in [5, 25, 45, 59] {
        let cut: Checkpoint = events[at].checkpoint().to_string().parse().unwrap();
        let resumed = builder(&sim).until_caught_up(true).resume_from(cut);
        let rest = drain_ok(resumed.build().unwrap()).await;
        assert_eq!(
            per_shard(&rest),
            per_shard(&events[at + 1..]),
            "resumed after event {at}"
        );
    }
}
