//! Sequence numbers: 21 to 40 decimal digits, strictly increasing across the stream.
//!
//! Forty digits overflow `u128`, so a number is held as two base-10^20 limbs and is never
//! compared as a string or a machine integer.

use std::fmt;

/// 10^20: the base of the low limb.
const BASE: u128 = 100_000_000_000_000_000_000;
/// The most digits a sequence number may have.
const MAX_DIGITS: usize = 40;
/// Sparse numbers gain a digit after this many issued numbers, so that a long test crosses
/// digit-count boundaries (where string comparison goes wrong) inside one shard.
const SPARSE_GROWTH_EVERY: u64 = 1000;
/// Upper bound of the random gap between two sparse numbers.
const SPARSE_MAX_GAP: u64 = 1 << 20;

/// A sequence number: `hi * 10^20 + lo`, with `lo < 10^20` and `hi < 10^20`.
///
/// The derived order is numeric because the high limb is compared first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Seq {
    hi: u128,
    lo: u128,
}

impl Seq {
    /// The largest representable number, 10^40 - 1.
    const MAX: Seq = Seq {
        hi: BASE - 1,
        lo: BASE - 1,
    };

    /// 10^`exp`, saturating at [`Seq::MAX`] beyond 39.
    pub(crate) fn pow10(exp: usize) -> Seq {
        if exp >= MAX_DIGITS {
            return Seq::MAX;
        }
        if exp < 20 {
            Seq {
                hi: 0,
                lo: 10u128.pow(exp as u32),
            }
        } else {
            Seq {
                hi: 10u128.pow((exp - 20) as u32),
                lo: 0,
            }
        }
    }

    /// `self + n`, saturating at [`Seq::MAX`].
    pub(crate) fn add(self, n: u128) -> Seq {
        let lo = self.lo + n % BASE;
        let hi = self.hi + n / BASE + lo / BASE;
        if hi >= BASE {
            return Seq::MAX;
        }
        Seq { hi, lo: lo % BASE }
    }

    /// `self - n`, saturating at zero.
    pub(crate) fn sub(self, n: u128) -> Seq {
        let (nhi, nlo) = (n / BASE, n % BASE);
        if (self.hi, self.lo) < (nhi, nlo) {
            return Seq { hi: 0, lo: 0 };
        }
        if self.lo >= nlo {
            Seq {
                hi: self.hi - nhi,
                lo: self.lo - nlo,
            }
        } else {
            Seq {
                hi: self.hi - nhi - 1,
                lo: self.lo + BASE - nlo,
            }
        }
    }

    /// Number of decimal digits (at least 1).
    pub(crate) fn digits(self) -> usize {
        fn len(mut v: u128) -> usize {
            let mut n = 1;
            while v >= 10 {
                v /= 10;
                n += 1;
            }
            n
        }
        if self.hi == 0 {
            len(self.lo)
        } else {
            20 + len(self.hi)
        }
    }

    /// Parses a decimal string; leading zeros are allowed. `None` for anything that is not
    /// 1 to 40 significant digits.
    pub(crate) fn parse(s: &str) -> Option<Seq> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits = s.trim_start_matches('0');
        if digits.len() > MAX_DIGITS {
            return None;
        }
        let split = digits.len().saturating_sub(20);
        let (hi, lo) = digits.split_at(split);
        let num = |part: &str| {
            if part.is_empty() {
                Some(0)
            } else {
                part.parse::<u128>().ok()
            }
        };
        Some(Seq {
            hi: num(hi)?,
            lo: num(lo)?,
        })
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.hi == 0 {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}{:020}", self.hi, self.lo)
        }
    }
}

/// How the simulator issues sequence numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceNumbers {
    /// Consecutive numbers of `digits` digits (clamped to 21..=40), like moto's 22-digit ones.
    Dense {
        /// Digit count of the first number.
        digits: usize,
    },
    /// Random gaps; the first number has `start_digits` digits (clamped to 21..=40) and every
    /// 1000 issued numbers the count grows by one digit, up to 40. The default, with 21 digits.
    Sparse {
        /// Digit count of the first number.
        start_digits: usize,
    },
    /// Consecutive numbers starting just below 10^39, so they cross from 39 to 40 digits within
    /// the first few records: beyond `u128`-as-string shortcuts and digit-count assumptions.
    Wide,
}

impl Default for SequenceNumbers {
    fn default() -> Self {
        SequenceNumbers::Sparse { start_digits: 21 }
    }
}

/// Issues strictly increasing sequence numbers for one stream.
#[derive(Debug)]
pub(crate) struct SeqGen {
    next: Seq,
    policy: SequenceNumbers,
    issued: u64,
    rng: fastrand::Rng,
}

impl SeqGen {
    /// A generator following `policy`, with random gaps drawn from `seed`.
    pub(crate) fn new(policy: SequenceNumbers, seed: u64) -> SeqGen {
        let mut rng = fastrand::Rng::with_seed(seed);
        let clamp = |d: usize| d.clamp(21, MAX_DIGITS);
        let next = match policy {
            SequenceNumbers::Dense { digits } => Seq::pow10(clamp(digits) - 1),
            SequenceNumbers::Sparse { start_digits } => {
                Seq::pow10(clamp(start_digits) - 1).add(u128::from(rng.u64(..1 << 40)))
            }
            SequenceNumbers::Wide => Seq::pow10(MAX_DIGITS - 1).sub(3),
        };
        SeqGen {
            next,
            policy,
            issued: 0,
            rng,
        }
    }

    /// The number the next [`SeqGen::issue`] returns.
    pub(crate) fn peek(&self) -> Seq {
        self.next
    }

    /// Issues the next number.
    pub(crate) fn issue(&mut self) -> Seq {
        let out = self.next;
        self.issued += 1;
        self.next = match self.policy {
            SequenceNumbers::Dense { .. } | SequenceNumbers::Wide => out.add(1),
            SequenceNumbers::Sparse { .. } => {
                let stepped = out.add(u128::from(self.rng.u64(1..=SPARSE_MAX_GAP)));
                if self.issued.is_multiple_of(SPARSE_GROWTH_EVERY) && stepped.digits() < MAX_DIGITS
                {
                    // Jump to the next power of ten: one more digit from here on.
                    Seq::pow10(stepped.digits())
                } else {
                    stepped
                }
            }
        };
        // `add` saturates at 10^40 - 1 instead of overflowing; reaching it would take far more
        // records than any test writes.
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        for s in [
            "0",
            "7",
            "100000000000000000000",
            "99999999999999999999",
            "1234567890123456789012345678901234567890",
            "9999999999999999999999999999999999999999",
        ] {
            assert_eq!(Seq::parse(s).map(|v| v.to_string()).as_deref(), Some(s));
        }
        assert_eq!(
            Seq::parse("0042").map(|v| v.to_string()).as_deref(),
            Some("42")
        );
        assert_eq!(Seq::parse(""), None);
        assert_eq!(Seq::parse("12a"), None);
        assert_eq!(Seq::parse("-1"), None);
        assert_eq!(Seq::parse(&"1".repeat(41)), None);
    }

    #[test]
    fn order_is_numeric() {
        let a = Seq::parse("999999999999999999999").unwrap();
        let b = Seq::parse("1000000000000000000000").unwrap();
        assert!(a < b);
        let c = Seq::parse("999999999999999999999999999999999999999").unwrap();
        let d = Seq::parse("1000000000000000000000000000000000000000").unwrap();
        assert!(c < d);
        assert_eq!(c.add(1), d);
        assert_eq!(d.sub(1), c);
        assert_eq!(d.digits(), 40);
        assert_eq!(c.digits(), 39);
    }

    #[test]
    fn arithmetic_carries_between_limbs() {
        let x = Seq::pow10(20).sub(1);
        assert_eq!(x.to_string(), "9".repeat(20));
        assert_eq!(x.add(1).to_string(), format!("1{}", "0".repeat(20)));
        assert_eq!(Seq::pow10(45), Seq::MAX);
        assert_eq!(Seq::MAX.add(5), Seq::MAX);
        assert_eq!(Seq::pow10(3).sub(5000).to_string(), "0");
    }

    #[test]
    fn dense_numbers_are_consecutive() {
        let mut g = SeqGen::new(SequenceNumbers::Dense { digits: 22 }, 1);
        let a = g.issue();
        let b = g.issue();
        assert_eq!(a.to_string(), format!("1{}", "0".repeat(21)));
        assert_eq!(b, a.add(1));
    }

    #[test]
    fn sparse_numbers_increase_and_grow_to_forty_digits() {
        let mut g = SeqGen::new(SequenceNumbers::default(), 7);
        let mut prev = g.issue();
        assert_eq!(prev.digits(), 21);
        let mut grew = false;
        for _ in 0..25_000 {
            let s = g.issue();
            assert!(s > prev);
            grew |= s.digits() > prev.digits();
            prev = s;
        }
        assert!(grew);
        assert_eq!(prev.digits(), 40);
    }

    #[test]
    fn wide_numbers_cross_from_39_to_40_digits() {
        let mut g = SeqGen::new(SequenceNumbers::Wide, 0);
        let all: Vec<Seq> = (0..6).map(|_| g.issue()).collect();
        assert_eq!(all[0].digits(), 39);
        assert_eq!(all[5].digits(), 40);
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        // The string form orders them wrongly: the point of this mode.
        assert!(all[0].to_string() > all[5].to_string());
    }
}
