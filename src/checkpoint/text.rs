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
            match parse_entry(field)? {
                Entry::Unlisted(pos) => unlisted = Some(pos),
                Entry::Shard(id, pos, epoch) => {
                    if let Some(epoch) = epoch {
                        epochs.insert(id.clone(), epoch);
                    }
                    positions.insert(id, pos);
                }
            }
        }
        Ok(Self {
            base: Arc::new(Snapshot::new(Arc::from(arn), positions, unlisted, epochs)),
            head: None,
            mark: None,
        })
    }
}

/// One `;`-separated entry of the text form.
enum Entry {
    /// `*=t<secs>`: the position of every shard not listed.
    Unlisted(ShardPosition),
    /// `<shard>=<position>[@<epoch>]`.
    Shard(Arc<str>, ShardPosition, Option<u64>),
}

fn parse_entry(field: &str) -> Result<Entry, Error> {
    let invalid = |why: &str| Error::new(ErrorKind::InvalidCheckpoint, why.to_owned());
    let (id, pos) = field
        .split_once('=')
        .ok_or_else(|| invalid("a shard entry has no position"))?;
    if id == "*" {
        return parse_position(pos)
            .filter(|p| matches!(p, ShardPosition::LatestSince(_)))
            .map(Entry::Unlisted)
            .ok_or_else(|| invalid("the default position is invalid"));
    }
    let id = unescape(id)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| invalid("a shard entry has a bad shard id"))?;
    let (pos, epoch) = match pos.split_once('@') {
        Some((pos, epoch)) => {
            let epoch = epoch
                .parse()
                .map_err(|_| invalid("a shard's lease epoch is invalid"))?;
            (pos, Some(epoch))
        }
        None => (pos, None),
    };
    let pos = parse_position(pos).ok_or_else(|| invalid("a shard position is invalid"))?;
    Ok(Entry::Shard(Arc::from(id), pos, epoch))
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
mod tests;
