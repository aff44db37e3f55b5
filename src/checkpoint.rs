//! Checkpoint tokens: the whole stream's position as of one event.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, ErrorKind};
use crate::sequence::SequenceNumber;

const VERSION_PREFIX: &str = "ddbs1;";

/// Where one shard stands in a [`Checkpoint`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShardPosition {
    /// Every record up to and including this sequence number was delivered.
    After(SequenceNumber),
    /// The shard was started at `LATEST` at this instant (whole seconds) and has delivered
    /// nothing since. On resume it is read from `TRIM_HORIZON`, skipping records created before
    /// the instant: nothing written after the original start is lost.
    LatestSince(SystemTime),
    /// The shard was read to its end.
    Finished,
}

/// The stream's position as of one event: every shard's position, finished shards included.
///
/// Every [`ChangeEvent`](crate::ChangeEvent) carries one. Restarting a
/// [`ChangeStream`](crate::ChangeStream) from the checkpoint of event *N* resumes exactly after
/// *N* in every shard, so saving any event's checkpoint, after processing it, is enough:
/// nothing before it is delivered again, nothing after it is lost.
///
/// A checkpoint is cheap to clone (reference counts: events share the bulk of it) and has a
/// compact, checksummed text form through [`Display`](fmt::Display) and [`FromStr`], which is
/// also its serde form:
///
/// ```text
/// ddbs1;<stream ARN>;*=t<epoch seconds>;<shard>=s<sequence number>;<shard>=f;c<crc32>
/// ```
/// (`s`: read up to that record, `f`: finished; `*=t`: the consumer started at `LATEST` at
/// that time, which holds for every shard not listed).
///
/// The text never holds whitespace, quotes, backslashes or control characters (names that
/// contain them are percent-escaped), so it goes into JSON, a header or a command line as it
/// is. Writing it costs one copy of the text its page's events share, plus the event's own
/// shard: O(shards) bytes, but no sorting or escaping per event.
#[derive(Clone)]
pub struct Checkpoint {
    base: Arc<Snapshot>,
    head: Option<(Arc<str>, ShardPosition)>,
}

/// The positions of all shards at one moment, shared by the checkpoints of many events.
#[derive(Debug)]
pub(crate) struct Snapshot {
    stream_arn: Arc<str>,
    positions: imbl::HashMap<Arc<str>, ShardPosition>,
    /// The position of every shard not in `positions`: `LatestSince` for a consumer that
    /// started at `LATEST`, `None` (the trim horizon) otherwise.
    unlisted: Option<ShardPosition>,
    /// The text form of `positions` (without checksum), made once when a checkpoint is first
    /// written out: the events of one page share the snapshot, and each splices in only its
    /// own shard.
    text: OnceLock<Rendered>,
}

/// A snapshot written out: `ddbs1;<arn>[;*=t<secs>]` and then one `;<shard>=<position>` entry
/// per shard, ordered by shard id.
#[derive(Debug)]
struct Rendered {
    text: String,
    /// Each entry's shard id and the offset in `text` of its leading `;`, in order.
    entries: Vec<(Arc<str>, usize)>,
}

impl Snapshot {
    fn new(
        stream_arn: Arc<str>,
        positions: imbl::HashMap<Arc<str>, ShardPosition>,
        unlisted: Option<ShardPosition>,
    ) -> Self {
        Self {
            stream_arn,
            positions,
            unlisted,
            text: OnceLock::new(),
        }
    }

    fn rendered(&self) -> &Rendered {
        self.text.get_or_init(|| {
            let mut sorted: Vec<_> = self.positions.iter().collect();
            sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
            let mut text = String::with_capacity(64 + 64 * sorted.len());
            text.push_str(VERSION_PREFIX);
            escape_into(&mut text, &self.stream_arn);
            if let Some(pos) = &self.unlisted {
                text.push_str(";*=");
                push_position(&mut text, pos);
            }
            let entries = sorted
                .into_iter()
                .map(|(id, pos)| {
                    let at = text.len();
                    push_entry(&mut text, id, pos);
                    (id.clone(), at)
                })
                .collect();
            Rendered { text, entries }
        })
    }
}

impl Checkpoint {
    pub(crate) fn new(base: Arc<Snapshot>, shard: Arc<str>, position: ShardPosition) -> Self {
        Self {
            base,
            head: Some((shard, position)),
        }
    }

    /// The ARN of the stream this checkpoint belongs to.
    pub fn stream_arn(&self) -> &str {
        &self.base.stream_arn
    }

    /// The position of one shard. A shard the checkpoint does not list has either delivered
    /// nothing yet (for a consumer that started at `LATEST` its position is
    /// [`ShardPosition::LatestSince`] the start, otherwise `None`: read from `TRIM_HORIZON`),
    /// or is a finished ancestor of a listed shard: a finished shard is left out once one of
    /// its children has a position, and resuming infers it from the stream's lineage.
    pub fn position(&self, shard_id: &str) -> Option<&ShardPosition> {
        match &self.head {
            Some((id, pos)) if &**id == shard_id => Some(pos),
            _ => self
                .base
                .positions
                .get(shard_id)
                .or(self.base.unlisted.as_ref()),
        }
    }

    /// The position of the shards [`positions`](Self::positions) does not list.
    pub(crate) fn unlisted(&self) -> Option<&ShardPosition> {
        self.base.unlisted.as_ref()
    }

    /// The position of every shard the checkpoint lists, ordered by shard id (see
    /// [`position`](Self::position) for the others).
    pub fn positions(&self) -> BTreeMap<&str, &ShardPosition> {
        let mut all: BTreeMap<&str, &ShardPosition> = self
            .base
            .positions
            .iter()
            .map(|(id, pos)| (&**id, pos))
            .collect();
        if let Some((id, pos)) = &self.head {
            all.insert(id, pos);
        }
        all
    }

    pub(crate) fn to_map(&self) -> imbl::HashMap<Arc<str>, ShardPosition> {
        let mut map = self.base.positions.clone();
        if let Some((id, pos)) = &self.head {
            map.insert(id.clone(), pos.clone());
        }
        map
    }
}

impl PartialEq for Checkpoint {
    fn eq(&self, other: &Self) -> bool {
        self.stream_arn() == other.stream_arn()
            && self.unlisted() == other.unlisted()
            && self.positions() == other.positions()
    }
}

impl Eq for Checkpoint {}

impl fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkpoint")
            .field("stream_arn", &self.stream_arn())
            .field("unlisted", &self.unlisted())
            .field("positions", &self.positions())
            .finish()
    }
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rendered = self.base.rendered();
        let text = rendered.text.as_str();
        // The shared text with this checkpoint's own shard written in its place: a copy of
        // the snapshot's text and one entry, not a walk over every shard.
        let (before, head, after) = match &self.head {
            None => (text, String::new(), ""),
            Some((id, pos)) => {
                let entries = &rendered.entries;
                let i = entries.partition_point(|(e, _)| **e < **id);
                let start = entries.get(i).map_or(text.len(), |e| e.1);
                let end = match entries.get(i) {
                    Some((e, _)) if e == id => entries.get(i + 1).map_or(text.len(), |e| e.1),
                    _ => start,
                };
                let mut head = String::with_capacity(id.len() + 48);
                push_entry(&mut head, id, pos);
                (&text[..start], head, &text[end..])
            }
        };
        let mut crc = crc32fast::Hasher::new();
        for part in [before, &head, after] {
            crc.update(part.as_bytes());
            f.write_str(part)?;
        }
        write!(f, ";c{:08x}", crc.finalize())
    }
}

fn push_entry(text: &mut String, id: &str, pos: &ShardPosition) {
    text.push(';');
    escape_into(text, id);
    text.push('=');
    push_position(text, pos);
}

fn push_position(text: &mut String, pos: &ShardPosition) {
    match pos {
        ShardPosition::After(seq) => {
            text.push('s');
            text.push_str(seq.as_str());
        }
        ShardPosition::Finished => text.push('f'),
        ShardPosition::LatestSince(at) => {
            let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            text.push('t');
            text.push_str(&secs.to_string());
        }
    }
}

impl FromStr for Checkpoint {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let invalid = |why: &str| Error::new(ErrorKind::InvalidCheckpoint, why.to_owned());
        let text = text.trim_end_matches(['\n', '\r']);
        if text.is_empty() {
            return Err(invalid("the checkpoint is empty"));
        }
        if !text.starts_with(VERSION_PREFIX) {
            return Err(invalid(
                "not a checkpoint of this crate (expected it to start with \"ddbs1;\")",
            ));
        }
        let (body, crc) = text
            .rsplit_once(";c")
            .ok_or_else(|| invalid("the checkpoint is truncated (no checksum)"))?;
        let expected = u32::from_str_radix(crc, 16)
            .ok()
            .filter(|_| crc.len() == 8)
            .ok_or_else(|| invalid("the checkpoint is truncated (bad checksum field)"))?;
        if crc32fast::hash(body.as_bytes()) != expected {
            return Err(invalid("the checkpoint is corrupt (checksum mismatch)"));
        }
        let mut fields = body[VERSION_PREFIX.len()..].split(';');
        let arn = unescape(fields.next().unwrap_or_default())
            .filter(|arn| !arn.is_empty())
            .ok_or_else(|| invalid("the checkpoint names no stream"))?;
        let mut positions = imbl::HashMap::new();
        let mut unlisted = None;
        for field in fields {
            let (id, pos) = field
                .split_once('=')
                .ok_or_else(|| invalid("a shard entry has no position"))?;
            if id == "*" {
                unlisted = Some(
                    parse_position(pos)
                        .filter(|p| matches!(p, ShardPosition::LatestSince(_)))
                        .ok_or_else(|| invalid("the default position is invalid"))?,
                );
                continue;
            }
            let id = unescape(id)
                .filter(|id| !id.is_empty())
                .ok_or_else(|| invalid("a shard entry has a bad shard id"))?;
            let pos = parse_position(pos).ok_or_else(|| invalid("a shard position is invalid"))?;
            positions.insert(Arc::from(id), pos);
        }
        Ok(Self {
            base: Arc::new(Snapshot::new(Arc::from(arn), positions, unlisted)),
            head: None,
        })
    }
}

fn parse_position(text: &str) -> Option<ShardPosition> {
    let (tag, rest) = text.split_at_checked(1)?;
    match tag {
        "s" => SequenceNumber::new(rest).ok().map(ShardPosition::After),
        "f" if rest.is_empty() => Some(ShardPosition::Finished),
        "t" => {
            let secs: u64 = rest.parse().ok()?;
            Some(ShardPosition::LatestSince(
                UNIX_EPOCH + Duration::from_secs(secs),
            ))
        }
        _ => None,
    }
}

/// Whether a byte of an ARN or shard id goes into the text form as it is. The others are the
/// form's separators and everything JSON, a shell or a header would need to quote: space,
/// `"`, `\\` and the control characters.
fn is_plain(b: u8) -> bool {
    !matches!(
        b,
        b';' | b'=' | b'%' | b'*' | b'"' | b'\\' | b' ' | 0..=0x1f | 0x7f
    )
}

/// Percent-escapes what [`is_plain`] rejects, so that any ARN or shard id survives the text
/// form and the form itself never needs quoting.
fn escape_into(out: &mut String, text: &str) {
    if text.bytes().all(is_plain) {
        // Real ARNs and shard ids never need it.
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        match u8::try_from(c) {
            Ok(b) if !is_plain(b) => {
                // Writing to a String cannot fail.
                let _ = write!(out, "%{b:02X}");
            }
            _ => out.push(c),
        }
    }
}

fn unescape(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let hex = rest.get(i + 1..i + 3)?;
        out.push(char::from(u8::from_str_radix(hex, 16).ok()?));
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

impl serde::Serialize for Checkpoint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Checkpoint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The consumer's running record of delivered positions, from which checkpoints are cut.
///
/// Positions live in a persistent map: cutting a snapshot is O(1) and an update copies only a
/// path of the map, so a checkpoint on every event costs O(1) amortised however many shards
/// the stream has.
#[derive(Debug)]
pub(crate) struct Positions {
    stream_arn: Arc<str>,
    map: imbl::HashMap<Arc<str>, ShardPosition>,
    unlisted: Option<ShardPosition>,
    snapshot: Option<Arc<Snapshot>>,
}

impl Positions {
    pub(crate) fn new(
        stream_arn: Arc<str>,
        map: imbl::HashMap<Arc<str>, ShardPosition>,
        unlisted: Option<ShardPosition>,
    ) -> Self {
        Self {
            stream_arn,
            map,
            unlisted,
            snapshot: None,
        }
    }

    pub(crate) fn set(&mut self, shard: Arc<str>, position: ShardPosition) {
        self.map.insert(shard, position);
        self.snapshot = None;
    }

    /// Forgets `shard` if it is finished.
    pub(crate) fn forget_finished(&mut self, shard: &str) {
        if self.map.get(shard) == Some(&ShardPosition::Finished) {
            self.remove(shard);
        }
    }

    pub(crate) fn remove(&mut self, shard: &str) {
        if self.map.remove(shard).is_some() {
            self.snapshot = None;
        }
    }

    /// The current positions, shared until the next change.
    pub(crate) fn snapshot(&mut self) -> Arc<Snapshot> {
        self.snapshot
            .get_or_insert_with(|| {
                Arc::new(Snapshot::new(
                    self.stream_arn.clone(),
                    self.map.clone(),
                    self.unlisted.clone(),
                ))
            })
            .clone()
    }

    pub(crate) fn checkpoint(&mut self) -> Checkpoint {
        Checkpoint {
            base: self.snapshot(),
            head: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ARN: &str =
        "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/2026-11-21T00:00:00.000";

    fn seq(s: &str) -> SequenceNumber {
        SequenceNumber::new(s).unwrap()
    }

    fn sample() -> Checkpoint {
        let mut p = Positions::new(ARN.into(), imbl::HashMap::new(), None);
        p.set("shardId-a".into(), ShardPosition::Finished);
        p.set(
            "shardId-b".into(),
            ShardPosition::LatestSince(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
        );
        Checkpoint::new(
            p.snapshot(),
            "shardId-c".into(),
            ShardPosition::After(seq("1234567890123456789012")),
        )
    }

    #[test]
    fn text_form_round_trips() {
        let cp = sample();
        let text = cp.to_string();
        assert!(text.starts_with("ddbs1;arn:aws:dynamodb"));
        let back: Checkpoint = text.parse().unwrap();
        assert_eq!(back, cp);
        assert_eq!(back.to_string(), text);
        assert_eq!(back.position("shardId-a"), Some(&ShardPosition::Finished));
        assert_eq!(back.position("shardId-z"), None);
    }

    #[test]
    fn latest_starts_cover_unlisted_shards() {
        let since = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut p = Positions::new(
            ARN.into(),
            imbl::HashMap::new(),
            Some(ShardPosition::LatestSince(since)),
        );
        p.set("done".into(), ShardPosition::Finished);
        let cp = p.checkpoint();
        assert_eq!(cp.position("any"), Some(&ShardPosition::LatestSince(since)));
        assert_eq!(cp.position("done"), Some(&ShardPosition::Finished));
        let text = cp.to_string();
        assert!(text.contains(";*=t1800000000;"), "{text}");
        let back: Checkpoint = text.parse().unwrap();
        assert_eq!(back, cp);
        assert_ne!(
            back,
            Positions::new(ARN.into(), imbl::HashMap::new(), None).checkpoint()
        );
    }

    #[test]
    fn head_overrides_base() {
        let mut p = Positions::new(ARN.into(), imbl::HashMap::new(), None);
        p.set("s".into(), ShardPosition::After(seq("5")));
        let cp = Checkpoint::new(p.snapshot(), "s".into(), ShardPosition::After(seq("9")));
        assert_eq!(cp.position("s"), Some(&ShardPosition::After(seq("9"))));
        assert_eq!(cp.positions().len(), 1);
    }

    #[test]
    fn serde_uses_the_text_form() {
        let cp = sample();
        let json = serde_json::to_string(&cp).unwrap();
        assert_eq!(json, format!("\"{cp}\""));
        let back: Checkpoint = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cp);
        let bad = serde_json::from_str::<Checkpoint>("\"ddbs1;junk\"");
        assert!(bad.is_err());
    }

    #[test]
    fn rejects_empty_truncated_corrupt_and_foreign_text() {
        let text = sample().to_string();
        let mut cases = vec![
            String::new(),
            "\n".to_owned(),
            "hello".to_owned(),
            text[..text.len() / 2].to_owned(),
            text[..text.len() - 1].to_owned(),
        ];
        // Flip one digit of the sequence number: the checksum catches it.
        cases.push(text.replacen("s1234", "s1235", 1));
        for case in cases {
            let err = case.parse::<Checkpoint>().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidCheckpoint, "{case:?}");
        }
    }

    #[test]
    fn escapes_separators_in_names() {
        let mut p = Positions::new("arn;with=odd%chars".into(), imbl::HashMap::new(), None);
        p.set("id;=%*".into(), ShardPosition::Finished);
        let cp = p.checkpoint();
        let back: Checkpoint = cp.to_string().parse().unwrap();
        assert_eq!(back, cp);
        assert_eq!(back.stream_arn(), "arn;with=odd%chars");
    }

    #[test]
    fn snapshots_are_shared_until_a_change() {
        let mut p = Positions::new(ARN.into(), imbl::HashMap::new(), None);
        let a = p.snapshot();
        let b = p.snapshot();
        assert!(Arc::ptr_eq(&a, &b));
        p.set("x".into(), ShardPosition::Finished);
        let c = p.snapshot();
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(
            a.positions.is_empty(),
            "older snapshots keep their positions"
        );
    }

    /// The text form written the plain way: every position, sorted, then the checksum.
    fn reference_text(cp: &Checkpoint) -> String {
        let mut text = String::from(VERSION_PREFIX);
        escape_into(&mut text, cp.stream_arn());
        for (id, pos) in cp.positions() {
            text.push(';');
            escape_into(&mut text, id);
            text.push('=');
            push_position(&mut text, pos);
        }
        let crc = crc32fast::hash(text.as_bytes());
        format!("{text};c{crc:08x}")
    }

    proptest! {
        #[test]
        fn the_head_is_written_in_its_place(ids in proptest::collection::btree_set("[a-f]{1,3}", 0..12), head in "[a-f]{1,3}", digits in "[0-9]{21,40}") {
            let mut p = Positions::new(ARN.into(), imbl::HashMap::new(), None);
            for id in &ids {
                p.set(Arc::from(id.as_str()), ShardPosition::Finished);
            }
            let cp = Checkpoint::new(p.snapshot(), Arc::from(head.as_str()), ShardPosition::After(seq(&digits)));
            prop_assert_eq!(cp.to_string(), reference_text(&cp));
            // Written twice from the same snapshot: the cached order is reused, unchanged.
            prop_assert_eq!(cp.to_string(), reference_text(&cp));
        }

        #[test]
        fn any_positions_round_trip(entries in proptest::collection::btree_map("[a-zA-Z0-9;=%_.\\-\"\\\\ \t\n\x00\x7fé]{1,20}", (0u8..3, "[0-9]{21,40}", 0u64..4_000_000_000), 0..40)) {
            let mut p = Positions::new(ARN.into(), imbl::HashMap::new(), None);
            for (id, (tag, digits, secs)) in &entries {
                let pos = match tag {
                    0 => ShardPosition::After(seq(digits)),
                    1 => ShardPosition::Finished,
                    _ => ShardPosition::LatestSince(UNIX_EPOCH + Duration::from_secs(*secs)),
                };
                p.set(Arc::from(id.as_str()), pos);
            }
            let cp = p.checkpoint();
            let text = cp.to_string();
            // Nothing in the text needs quoting in JSON (or a shell).
            prop_assert_eq!(serde_json::to_string(&text).unwrap(), format!("\"{text}\""));
            prop_assert!(!text.contains(char::is_whitespace), "{}", text);
            let back: Checkpoint = text.parse().unwrap();
            prop_assert_eq!(back, cp);
        }
    }
}
