//! The demo: the crate's stream simulator playing an `orders` table for a few seconds.
//!
//! Orders are placed, paid, shipped, delivered, cancelled and expired by TTL while the stream's
//! first shard splits in two and one child rolls over, so the output shows each key's changes in
//! order across shards, parents before children.
//!
//! The script and the simulator are deterministic: every run has the same stream ARN, shard ids
//! and sequence numbers, so a `--checkpoint` saved by one run resumes the next. A resumed run
//! first replays, at once, the part of the script its checkpoint has already seen.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dynamodb_stream::sim::{AttributeValue, Item, SimShard, Simulator};
use dynamodb_stream::{Checkpoint, SequenceNumber, ShardPosition};

/// The simulated stream's label, fixed so that checkpoints carry over between runs.
const LABEL: &str = "2026-01-01T00:00:00.000";
const SEED: u64 = 2026;
/// Time for a consumer to take its first iterators before the first write.
const LEAD_IN: Duration = Duration::from_millis(300);
/// Time between two steps of the script.
const PACE: Duration = Duration::from_millis(100);

fn simulator() -> Simulator {
    Simulator::builder()
        .table_name("orders")
        .stream_label(LABEL)
        .seed(SEED)
        .build()
}

/// A running demo: the simulator and the task writing to it.
pub(crate) struct Demo {
    sim: Simulator,
    written: Arc<AtomicBool>,
}

impl Demo {
    /// Builds the simulator, replays the part of the script that `resume` has seen, and
    /// plays the rest in the background.
    pub(crate) fn start(resume: Option<&Checkpoint>) -> Demo {
        let sim = simulator();
        let mut steps = script().into_iter().peekable();
        if let Some(checkpoint) = resume.filter(|c| c.stream_arn() == sim.stream_arn()) {
            while !holds(&sim, checkpoint) {
                match steps.next() {
                    Some(step) => step.apply(&sim),
                    None => break,
                }
            }
        }
        let written = Arc::new(AtomicBool::new(false));
        let (writer, done) = (sim.clone(), written.clone());
        tokio::spawn(async move {
            tokio::time::sleep(LEAD_IN).await;
            for step in steps {
                tokio::time::sleep(PACE).await;
                step.apply(&writer);
            }
            done.store(true, Ordering::Release);
        });
        Demo { sim, written }
    }

    /// The demo stream's ARN, the same in every run.
    pub(crate) fn stream_arn() -> String {
        simulator().stream_arn()
    }

    pub(crate) fn simulator(&self) -> &Simulator {
        &self.sim
    }

    /// Whether the script is over and `read` covers every record it wrote.
    pub(crate) fn finished(&self, read: &Checkpoint) -> bool {
        if !self.written.load(Ordering::Acquire) {
            return false;
        }
        let shards = self.sim.shards();
        let listed = read.positions();
        shards.iter().all(|shard| {
            let Some(last) = last_sequence_number(shard) else {
                return true;
            };
            match listed.get(shard.shard_id.as_str()) {
                Some(ShardPosition::Finished) => true,
                Some(ShardPosition::After(seq)) => *seq >= last,
                // A finished shard leaves the checkpoint once a descendant has a position.
                _ => has_listed_descendant(&shards, &listed, &shard.shard_id),
            }
        })
    }
}

/// Whether a child of `id`, or one of their descendants, has a position in `listed`.
fn has_listed_descendant(
    shards: &[SimShard],
    listed: &BTreeMap<&str, &ShardPosition>,
    id: &str,
) -> bool {
    shards
        .iter()
        .filter(|s| s.parent_shard_id.as_deref() == Some(id))
        .any(|child| {
            listed.contains_key(child.shard_id.as_str())
                || has_listed_descendant(shards, listed, &child.shard_id)
        })
}

/// Whether the simulator has written everything `checkpoint` has read.
fn holds(sim: &Simulator, checkpoint: &Checkpoint) -> bool {
    let shards = sim.shards();
    checkpoint.positions().into_iter().all(|(id, position)| {
        let Some(shard) = shards.iter().find(|s| s.shard_id == id) else {
            return false;
        };
        match position {
            ShardPosition::After(seq) => last_sequence_number(shard).is_some_and(|l| l >= *seq),
            ShardPosition::Finished => !shard.open,
            _ => true,
        }
    })
}

fn last_sequence_number(shard: &SimShard) -> Option<SequenceNumber> {
    shard
        .last_sequence_number
        .as_deref()
        .and_then(|s| SequenceNumber::new(s).ok())
}

/// One step of the script.
enum Step {
    Put(Item),
    Delete(&'static str),
    Expire(&'static str),
    /// Splits the `shard`-th shard ever created into `children`.
    Split {
        shard: usize,
        children: usize,
    },
}

impl Step {
    fn apply(self, sim: &Simulator) {
        match self {
            Step::Put(item) => {
                sim.put_item(item);
            }
            Step::Delete(order) => {
                sim.delete_item(key(order));
            }
            Step::Expire(order) => {
                sim.ttl_delete(key(order));
            }
            Step::Split { shard, children } => {
                if let Some(parent) = sim.shards().get(shard) {
                    sim.split(&parent.shard_id, children);
                }
            }
        }
    }
}

/// About thirty writes to eight orders, a split in two, then a rollover of one child.
fn script() -> Vec<Step> {
    use Step::{Delete, Expire, Put, Split};
    let ids = [
        "1001", "1002", "1003", "1004", "1005", "1006", "1007", "1008",
    ];
    let mut steps: Vec<Step> = Vec::new();
    steps.extend(ids[..6].iter().map(|id| Put(order(id, Status::Placed))));
    steps.extend(ids[..3].iter().map(|id| Put(order(id, Status::Paid))));
    steps.push(Split {
        shard: 0,
        children: 2,
    });
    steps.extend(ids[3..6].iter().map(|id| Put(order(id, Status::Paid))));
    steps.extend(ids[..3].iter().map(|id| Put(order(id, Status::Shipped))));
    steps.extend(ids[6..].iter().map(|id| Put(order(id, Status::Placed))));
    steps.push(Delete("1005"));
    steps.push(Split {
        shard: 1,
        children: 1,
    });
    steps.extend(ids[..3].iter().map(|id| Put(order(id, Status::Delivered))));
    steps.extend(ids[6..].iter().map(|id| Put(order(id, Status::Paid))));
    steps.extend(
        [ids[3], ids[5]]
            .iter()
            .map(|id| Put(order(id, Status::Shipped))),
    );
    steps.push(Expire("1002"));
    steps
}

#[derive(Clone, Copy)]
enum Status {
    Placed,
    Paid,
    Shipped,
    Delivered,
}

/// Order `id` at `status`: strings, numbers, maps, lists, a set, booleans, binary and null.
fn order(id: &str, status: Status) -> Item {
    let n: u32 = id.parse().unwrap_or_default();
    let customers = ["ada", "grace", "edsger", "barbara"];
    let customer = customers[n as usize % customers.len()];
    let line = |sku: &str, qty: u32| {
        AttributeValue::M(HashMap::from([
            ("sku".to_owned(), AttributeValue::S(sku.to_owned())),
            ("qty".to_owned(), AttributeValue::N(qty.to_string())),
        ]))
    };
    let mut item = key(id);
    item.extend([
        (
            "customer".to_owned(),
            AttributeValue::S(customer.to_owned()),
        ),
        (
            "total".to_owned(),
            AttributeValue::N(format!("{}.{:02}", 10 + n % 90, n % 100)),
        ),
        (
            "lines".to_owned(),
            AttributeValue::L(vec![line("book", 1), line("pen", n % 4 + 1)]),
        ),
        ("gift".to_owned(), AttributeValue::Bool(n.is_multiple_of(2))),
        (
            "expires_at".to_owned(),
            AttributeValue::N("1798761600".to_owned()),
        ),
    ]);
    let (status, tags): (&str, &[&str]) = match status {
        Status::Placed => ("PLACED", &["new"]),
        Status::Paid => ("PAID", &["new", "paid"]),
        Status::Shipped => ("SHIPPED", &["paid", "shipped"]),
        Status::Delivered => ("DELIVERED", &["paid", "shipped", "done"]),
    };
    item.insert("status".to_owned(), AttributeValue::S(status.to_owned()));
    item.insert(
        "tags".to_owned(),
        AttributeValue::Ss(tags.iter().map(|t| (*t).to_owned()).collect()),
    );
    if matches!(status, "SHIPPED" | "DELIVERED") {
        let label = format!("label:{id}").into_bytes();
        item.insert("label".to_owned(), AttributeValue::B(label.into()));
        item.insert("note".to_owned(), AttributeValue::Null(true));
    }
    item
}

fn key(id: &str) -> Item {
    HashMap::from([("pk".to_owned(), AttributeValue::S(format!("order#{id}")))])
}
