//! Shard iterators: opaque strings that encode the simulator, shard, position and issue time.
//!
//! They look like the service's (`<stream arn>|1|<payload>`) and carry a checksum, so a
//! truncated or hand-edited iterator is a `ValidationException` rather than a wrong read.

use super::hash::mix;

/// What an iterator points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    /// The issuing simulator's process-wide number.
    pub(crate) sim: u64,
    /// Index of the shard in the simulator.
    pub(crate) shard: u32,
    /// Logical index of the next record to read.
    pub(crate) pos: u64,
    /// Issue time, in nanoseconds since the simulator's epoch on tokio's clock.
    pub(crate) issued_ns: u64,
}

fn checksum(t: &Token) -> u64 {
    mix(mix(mix(mix(t.sim) ^ u64::from(t.shard)) ^ t.pos) ^ t.issued_ns)
}

/// Renders an iterator for the stream `arn`.
pub(crate) fn encode(arn: &str, t: &Token) -> String {
    format!(
        "{arn}|1|{:016x}{:08x}{:016x}{:016x}{:016x}",
        t.sim,
        t.shard,
        t.pos,
        t.issued_ns,
        checksum(t)
    )
}

/// Parses an iterator; `None` if it is not one this module produced.
pub(crate) fn decode(s: &str) -> Option<Token> {
    let (_, payload) = s.rsplit_once('|')?;
    if payload.len() != 72 || !payload.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let field =
        |from: usize, len: usize| u64::from_str_radix(payload.get(from..from + len)?, 16).ok();
    let t = Token {
        sim: field(0, 16)?,
        shard: u32::try_from(field(16, 8)?).ok()?,
        pos: field(24, 16)?,
        issued_ns: field(40, 16)?,
    };
    (field(56, 16)? == checksum(&t)).then_some(t)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper_detection() {
        let t = Token {
            sim: 3,
            shard: 7,
            pos: 1 << 40,
            issued_ns: 12345,
        };
        let s = encode("arn:aws:dynamodb:us-east-1:0:table/t/stream/x", &t);
        assert_eq!(decode(&s), Some(t));
        let mut tampered = s.clone().into_bytes();
        let last = tampered.len() - 20;
        tampered[last] = if tampered[last] == b'0' { b'1' } else { b'0' };
        assert_eq!(decode(&String::from_utf8(tampered).unwrap()), None);
        assert_eq!(decode("garbage"), None);
        assert_eq!(decode("a|1|é"), None);
        assert_eq!(decode(&s[..s.len() - 1]), None);
    }
}
