//! The text form of a [`Checkpoint`]: `ddbs1;<arn>[;*=t<secs>];<shard>=<position>…;c<crc32>`.

use std::fmt::{self, Write as _};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use super::{Checkpoint, ShardPosition, Snapshot};
use crate::error::{Error, ErrorKind};
use crate::sequence::SequenceNumber;

const VERSION_PREFIX: &str = "ddbs1;";

/// A snapshot written out: `ddbs1;<arn>[;*=t<secs>]` and then one `;<shard>=<position>` entry
/// per shard, ordered by shard id.
#[derive(Debug)]
pub(super) struct Rendered {
    text: String,
    /// Each entry's shard id and the offset in `text` of its leading `;`, in order.
    entries: Vec<(Arc<str>, usize)>,
}

impl Snapshot {
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
                    push_entry(&mut text, id, pos, self.epochs.get(id).copied());
                    (id.clone(), at)
                })
                .collect();
            Rendered { text, entries }
        })
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
                push_entry(&mut head, id, pos, self.base.epochs.get(id).copied());
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

fn push_entry(text: &mut String, id: &str, pos: &ShardPosition, epoch: Option<u64>) {
    text.push(';');
    escape_into(text, id);
    text.push('=');
    push_position(text, pos);
    if let Some(epoch) = epoch {
        // Writing to a String cannot fail.
        let _ = write!(text, "@{epoch}");
    }
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
        let mut epochs = imbl::HashMap::new();
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
            let (pos, epoch) = match pos.split_once('@') {
                Some((pos, epoch)) => (pos, Some(epoch)),
                None => (pos, None),
            };
            let pos = parse_position(pos).ok_or_else(|| invalid("a shard position is invalid"))?;
            let id: Arc<str> = Arc::from(id);
            if let Some(epoch) = epoch {
                let epoch = epoch
                    .parse()
                    .map_err(|_| invalid("a shard's lease epoch is invalid"))?;
                epochs.insert(id.clone(), epoch);
            }
            positions.insert(id, pos);
        }
        Ok(Self {
            base: Arc::new(Snapshot::new(Arc::from(arn), positions, unlisted, epochs)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Positions;
    use crate::checkpoint::testing::{ARN, seq};
    use proptest::prelude::*;

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
    fn lease_epochs_round_trip_and_are_checked() {
        let mut p = Positions::new(ARN.into(), imbl::HashMap::new(), None);
        p.lease(
            "held".into(),
            7,
            Some(ShardPosition::After(seq("1234567890123456789012"))),
        );
        p.lease("fresh".into(), 3, None);
        let cp = Checkpoint::new(p.snapshot(), "fresh".into(), ShardPosition::Finished);
        let text = cp.to_string();
        assert!(text.contains(";held=s1234567890123456789012@7;"), "{text}");
        assert!(text.contains(";fresh=f@3;"), "{text}");
        let back: Checkpoint = text.parse().unwrap();
        assert_eq!(back, cp);
        assert_eq!(
            (back.epoch("held"), back.epoch("fresh")),
            (Some(7), Some(3))
        );
        assert_eq!(back.epoch("other"), None);
        // A bad epoch is refused, once the checksum is made to match.
        let body = text[..text.rfind(";c").unwrap()].replace("@7", "@x");
        let forged = format!("{body};c{:08x}", crc32fast::hash(body.as_bytes()));
        let err = forged.parse::<Checkpoint>().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidCheckpoint);
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

    /// The text form written the plain way: every position, sorted, then the checksum.
    fn reference_text(cp: &Checkpoint) -> String {
        let mut text = String::from(VERSION_PREFIX);
        escape_into(&mut text, cp.stream_arn());
        for (id, pos) in cp.positions() {
            push_entry(&mut text, id, pos, cp.epoch(id));
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
