//! Sequence numbers: decimal strings of 21 to 40 digits, ordered numerically.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::error::{Error, ErrorKind};

/// A record's position inside its shard.
///
/// DynamoDB Streams sequence numbers are decimal strings of 21 to 40 digits. Forty digits do not
/// fit in a `u128`, and plain string order puts `"100"` before `"99"`, so comparison strips
/// leading zeros, then compares lengths, then digits. Sequence numbers increase within a shard
/// only: comparing numbers of different shards is meaningless.
///
/// Cloning is cheap (a reference count).
#[derive(Clone, Eq)]
pub struct SequenceNumber(Arc<str>);

impl SequenceNumber {
    /// Parses a sequence number: one or more ASCII digits, at most 64 (the service uses 21 to 40).
    ///
    /// # Errors
    /// An error of kind [`ErrorKind::MalformedRecord`] when the text is not a decimal number.
    pub fn new(digits: &str) -> Result<Self, Error> {
        if is_valid(digits) {
            Ok(Self(Arc::from(digits)))
        } else {
            Err(Error::new(
                ErrorKind::MalformedRecord,
                format!("invalid sequence number {digits:?}: expected 1 to 64 decimal digits"),
            ))
        }
    }

    /// The sequence number as the service wrote it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn significant(&self) -> &str {
        let trimmed = self.0.trim_start_matches('0');
        if trimmed.is_empty() { "0" } else { trimmed }
    }
}

fn is_valid(digits: &str) -> bool {
    !digits.is_empty() && digits.len() <= 64 && digits.bytes().all(|b| b.is_ascii_digit())
}

impl Ord for SequenceNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.significant(), other.significant());
        a.len().cmp(&b.len()).then_with(|| a.cmp(b))
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for SequenceNumber {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl std::hash::Hash for SequenceNumber {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Consistent with `Eq`: numerically equal numbers hash alike.
        self.significant().hash(state);
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SequenceNumber({})", self.0)
    }
}

impl FromStr for SequenceNumber {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::new(s)
    }
}

impl AsRef<str> for SequenceNumber {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seq(s: &str) -> SequenceNumber {
        SequenceNumber::new(s).unwrap()
    }

    #[test]
    fn orders_by_value_not_by_text() {
        assert!(seq("99") < seq("100"));
        assert!(seq("000000000000000000000099") < seq("100"));
        assert_eq!(seq("0042"), seq("42"));
        assert_eq!(seq("0"), seq("000"));
        let forty = "9".repeat(40);
        let thirty_nine = "9".repeat(39);
        assert!(seq(&thirty_nine) < seq(&forty));
        assert!(seq(&format!("1{}", "0".repeat(39))) > seq(&thirty_nine));
    }

    #[test]
    fn rejects_what_is_not_a_number() {
        for bad in ["", "12a", "-1", " 1", "1.5", &"1".repeat(65)] {
            let err = SequenceNumber::new(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::MalformedRecord);
        }
    }

    proptest! {
        #[test]
        fn agrees_with_u128_where_it_fits(a in any::<u128>(), b in any::<u128>(), za in 0usize..3, zb in 0usize..3) {
            let sa = seq(&format!("{}{a}", "0".repeat(za)));
            let sb = seq(&format!("{}{b}", "0".repeat(zb)));
            prop_assert_eq!(sa.cmp(&sb), a.cmp(&b));
            prop_assert_eq!(sa == sb, a == b);
        }

        #[test]
        fn wide_numbers_order_like_their_halves(hi_a in 1u64..1000, lo_a in any::<u128>(), hi_b in 1u64..1000, lo_b in any::<u128>()) {
            // hi * 10^39 + lo, with lo < 10^38: up to 42 digits.
            let lo_a = lo_a % 10u128.pow(38);
            let lo_b = lo_b % 10u128.pow(38);
            let sa = seq(&format!("{hi_a}{lo_a:039}"));
            let sb = seq(&format!("{hi_b}{lo_b:039}"));
            prop_assert_eq!(sa.cmp(&sb), (hi_a, lo_a).cmp(&(hi_b, lo_b)));
        }
    }
}
