//! Lineage order, exactly-once delivery and per-key order over random shard trees, page
//! sizes, empty pages and fault schedules, through the real SDK client and the simulator.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;

use dynamodb_stream::Readers;
use dynamodb_stream::sim::{Fault, Operation, SequenceNumbers, Simulator};
use proptest::prelude::*;
use support::sim::*;

#[derive(Clone, Debug)]
enum Step {
    /// Write key `k` (of 6).
    Write(u8),
    /// Split the `i`-th open shard (mod count) into `n` children (1 = rollover).
    Split(u8, u8),
    /// The next `n` GetRecords of the `i`-th open shard return empty pages.
    Empty(u8, u8),
    /// The next `n` calls of an operation fail with a transient fault.
    Fault(u8, u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (0u8..6).prop_map(Step::Write),
        1 => (any::<u8>(), 1u8..4).prop_map(|(i, n)| Step::Split(i, n)),
        1 => (any::<u8>(), 1u8..3).prop_map(|(i, n)| Step::Empty(i, n)),
        1 => (0u8..6, 1u8..5).prop_map(|(f, n)| Step::Fault(f, n)),
    ]
}

/// The `i`-th open shard (mod their count), if any is open.
fn open_shard(sim: &Simulator, i: u8) -> Option<String> {
    let open = open_shards(sim);
    (!open.is_empty()).then(|| open[usize::from(i) % open.len()].clone())
}

fn apply(sim: &Simulator, steps: &[Step], written: &mut Vec<(String, u64)>) {
    // Faults stay within the retry budget (10 consecutive failures of one call), which the
    // fault tests cover past its end.
    let mut injected = std::collections::HashMap::new();
    for s in steps {
        match *s {
            Step::Write(k) => {
                let v = written.len() as u64;
                let pk = format!("k{k}");
                sim.put_item(item(&pk, v));
                written.push((pk, v));
            }
            Step::Split(i, n) => {
                if let Some(shard) = open_shard(sim, i) {
                    sim.split(&shard, usize::from(n));
                }
            }
            Step::Empty(i, n) => {
                if let Some(shard) = open_shard(sim, i) {
                    sim.empty_pages(&shard, u32::from(n));
                }
            }
            Step::Fault(f, n) => {
                let (op, fault) = match f {
                    0 => (Operation::GetRecords, Fault::InternalServerError),
                    1 => (Operation::GetRecords, Fault::LimitExceeded),
                    2 => (Operation::GetRecords, Fault::ExpiredIterator),
                    3 => (Operation::GetShardIterator, Fault::InternalServerError),
                    4 => (Operation::DescribeStream, Fault::LimitExceeded),
                    _ => (Operation::DescribeStream, Fault::InternalServerError),
                };
                let total = injected.entry(f).or_insert(0u32);
                let n = u32::from(n).min(8 - *total);
                *total += n;
                sim.inject(op, fault, n);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn every_record_once_in_lineage_and_key_order(
        roots in 1usize..4,
        steps in proptest::collection::vec(step(), 1..80),
        page in 1usize..6,
        seed in any::<u64>(),
        spawned in any::<bool>(),
    ) {
        paused_runtime().block_on(async {
            let sim = Simulator::builder()
                .initial_shards(roots)
                .max_page(page)
                .seed(seed)
                .sequence_numbers(if seed % 2 == 0 { SequenceNumbers::Wide } else { SequenceNumbers::default() })
                .build();
            let mut written = Vec::new();
            apply(&sim, &steps, &mut written);
            // The production mode (no catch-up): runs of empty pages mid-shard are legitimate
            // and unbounded, so take exactly what was written, then require silence.
            // Readers inline or on their own tasks (on this one thread): the same guarantees.
            let readers = if spawned { Readers::Spawned } else { Readers::Inline };
            let mut stream = builder(&sim).readers(readers).build().unwrap();
            let events = take(&mut stream, written.len()).await;
            let extra = tokio::time::timeout(std::time::Duration::from_secs(5), futures::StreamExt::next(&mut stream)).await;
            prop_assert!(extra.is_err(), "more events than records written: {:?}", extra);

            let got: Vec<(String, u64)> = events.iter().map(pk_v).collect();
            let unique: HashSet<&(String, u64)> = got.iter().collect();
            prop_assert_eq!(unique.len(), got.len(), "duplicates delivered");
            let mut sorted = got.clone();
            sorted.sort_by_key(|(_, v)| *v);
            prop_assert_eq!(&sorted, &written, "not every record delivered");
            assert_per_key_order(&events);
            assert_parents_first(&sim, &events);
            Ok(())
        })?;
    }
}

/// Records appended while the consumer runs, across splits, all arrive in per-key order.
#[tokio::test(start_paused = true)]
async fn live_writes_across_splits() {
    let sim = Simulator::builder().initial_shards(2).seed(7).build();
    let mut stream = builder(&sim).build().unwrap();
    let writer = {
        let sim = sim.clone();
        tokio::spawn(async move {
            for v in 0..300u64 {
                sim.put_item(item(&format!("k{}", v % 10), v));
                if v % 60 == 59 {
                    let n = if v % 120 == 59 { 2 } else { 1 };
                    sim.split(&open_shards(&sim)[0], n);
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
    };
    let events = take(&mut stream, 300).await;
    writer.await.unwrap();
    let vs: HashSet<u64> = events.iter().map(|e| pk_v(e).1).collect();
    assert_eq!(vs.len(), 300);
    assert_per_key_order(&events);
    assert_parents_first(&sim, &events);
}
