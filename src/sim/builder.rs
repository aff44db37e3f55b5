//! [`SimulatorBuilder`]: the stream's fixed settings.

use super::json::RecordContext;
use super::model::{Model, Settings};
use super::table::KeySchema;
use super::wire::StreamMeta;
use super::{SequenceNumbers, Simulator, StreamViewType, epoch_secs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// Numbers simulators within the process, so that no two share a stream ARN.
static NEXT_SIMULATOR: AtomicU64 = AtomicU64::new(1);

/// Builds a [`Simulator`]. Consuming setters; every setting has a default.
#[must_use]
#[derive(Clone, Debug)]
pub struct SimulatorBuilder {
    table_name: String,
    keys: KeySchema,
    view: StreamViewType,
    sequence_numbers: SequenceNumbers,
    describe_rate_limit: bool,
    shuffle_listing: bool,
    trailing_empty_listing_page: bool,
    iterator_ttl: Duration,
    initial_shards: usize,
    max_page: usize,
    seed: u64,
    stream_label: Option<String>,
}

impl Default for SimulatorBuilder {
    fn default() -> Self {
        SimulatorBuilder {
            table_name: "sim-table".to_owned(),
            keys: KeySchema {
                hash: "pk".to_owned(),
                range: None,
            },
            view: StreamViewType::NewAndOldImages,
            sequence_numbers: SequenceNumbers::default(),
            describe_rate_limit: true,
            shuffle_listing: true,
            trailing_empty_listing_page: false,
            iterator_ttl: Duration::from_secs(15 * 60),
            initial_shards: 1,
            max_page: 1000,
            seed: 0x5eed,
            stream_label: None,
        }
    }
}

impl SimulatorBuilder {
    /// The table's name, as it appears in the stream ARN. Default is `sim-table`.
    pub fn table_name(mut self, name: impl Into<String>) -> Self {
        self.table_name = name.into();
        self
    }

    /// The table's partition (hash) key and optional sort (range) key attribute names.
    /// Default is `("pk", None)`.
    pub fn key_schema(mut self, hash: impl Into<String>, range: Option<&str>) -> Self {
        self.keys = KeySchema {
            hash: hash.into(),
            range: range.map(str::to_owned),
        };
        self
    }

    /// Which images records carry. Default is `NEW_AND_OLD_IMAGES`.
    pub fn view_type(mut self, view: StreamViewType) -> Self {
        self.view = view;
        self
    }

    /// How sequence numbers are issued. Default is
    /// [`SequenceNumbers::Sparse`] with 21 starting digits.
    pub fn sequence_numbers(mut self, numbers: SequenceNumbers) -> Self {
        self.sequence_numbers = numbers;
        self
    }

    /// Whether more than 10 DescribeStream calls within a second get
    /// `LimitExceededException`, as the service enforces per stream. Default is `true`.
    pub fn describe_rate_limit(mut self, enforce: bool) -> Self {
        self.describe_rate_limit = enforce;
        self
    }

    /// Whether DescribeStream lists shards in a deterministic but non-chronological order,
    /// as the service does; `false` lists them in creation order. Default is `true`.
    pub fn shuffle_listing(mut self, shuffle: bool) -> Self {
        self.shuffle_listing = shuffle;
        self
    }

    /// Whether the listing's last non-empty page still carries a `LastEvaluatedShardId`,
    /// so that the following page is empty (the service may do this). Default is `false`.
    pub fn trailing_empty_listing_page(mut self, trailing: bool) -> Self {
        self.trailing_empty_listing_page = trailing;
        self
    }

    /// How long a shard iterator stays valid. Default is 15 minutes.
    pub fn iterator_ttl(mut self, ttl: Duration) -> Self {
        self.iterator_ttl = ttl;
        self
    }

    /// How many open root shards exist at first, dividing the key space evenly. Default is 1.
    pub fn initial_shards(mut self, shards: usize) -> Self {
        self.initial_shards = shards;
        self
    }

    /// Cap on records per GetRecords page, see [`Simulator::set_max_page`]. Default is 1000.
    pub fn max_page(mut self, records: usize) -> Self {
        self.max_page = records.max(1);
        self
    }

    /// Seed for the random parts (sequence-number gaps), for reproducible runs. Default is
    /// a fixed seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// A fixed stream label (the ARN's last part, a creation timestamp on the real service).
    /// With it, and a fixed [`seed`](Self::seed), the stream is reproducible across processes:
    /// the same ARN, shard ids and sequence numbers, so a checkpoint saved against one run
    /// resumes in the next. Default is a label unique within the process.
    pub fn stream_label(mut self, label: impl Into<String>) -> Self {
        self.stream_label = Some(label.into());
        self
    }

    /// Builds the simulator.
    pub fn build(self) -> Simulator {
        let id = NEXT_SIMULATOR.fetch_add(1, Ordering::Relaxed);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        // Real labels are creation timestamps; the fraction holds the simulator number
        // instead of milliseconds, to keep ARNs unique within the process.
        let label = self
            .stream_label
            .clone()
            .unwrap_or_else(|| format!("{}.{id:03}", iso_seconds(now.as_secs())));
        let arn = format!(
            "arn:aws:dynamodb:us-east-1:000000000000:table/{}/stream/{label}",
            self.table_name
        );
        let settings = Settings {
            iterator_ttl: self.iterator_ttl,
            max_page: self.max_page,
            describe_rate_limit: self.describe_rate_limit,
            shuffle_listing: self.shuffle_listing,
            trailing_empty_listing_page: self.trailing_empty_listing_page,
            sequence_numbers: self.sequence_numbers,
            seed: self.seed,
        };
        let ctx = RecordContext {
            region: "us-east-1",
            view: self.view.clone(),
        };
        // Shard ids embed a creation time: a fixed one for reproducible streams.
        let id_base_ms = match self.stream_label {
            Some(_) => 1_700_000_000_000,
            None => u64::try_from(now.as_millis()).unwrap_or(u64::MAX / 2),
        };
        // A fixed label makes the stream reproducible in any process: shard ids and event ids
        // then derive from the label, not from this simulator's number in the process.
        let salt = match &self.stream_label {
            Some(label) => label.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            }),
            None => id,
        };
        let mut model = Model::new(settings, ctx, salt, id_base_ms);
        model.create_roots(self.initial_shards);
        let meta = StreamMeta {
            arn,
            label,
            table: self.table_name,
            keys: self.keys,
            view: self.view,
            created_secs: epoch_secs(),
        };
        Simulator::from_parts(id, meta, model)
    }
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) for seconds since the Unix epoch.
fn iso_seconds(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso_seconds(0), "1970-01-01T00:00:00");
        assert_eq!(iso_seconds(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(iso_seconds(1_700_000_000), "2023-11-14T22:13:20");
    }
}
