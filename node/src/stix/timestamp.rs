//! STIX timestamps: RFC 3339, UTC, `Z` suffix, optional fractional seconds.
//!
//! We keep the original text everywhere data is stored or signed (re-rendering a
//! timestamp could change its precision and therefore its canonical bytes); this type
//! is only for comparing instants and for producing new timestamps.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};

/// Seconds added to the system clock by [`Timestamp::now`].
static CLOCK_OFFSET_SECS: AtomicI64 = AtomicI64::new(0);

/// Shifts this process's clock (every [`Timestamp::now`]) by `secs`.
///
/// For fault tests only: a node whose clock runs ahead or behind is a process started
/// with `SYNERGIA_TEST_CLOCK_OFFSET_SECS` (read by `synergia serve`). TLS certificate
/// checks keep the system clock.
pub fn set_clock_offset_secs(secs: i64) {
    CLOCK_OFFSET_SECS.store(secs, Ordering::Relaxed);
}

/// An instant with microsecond resolution, as parsed from a STIX timestamp.
///
/// Ordering is chronological. Sub-microsecond digits in the input are kept in
/// `nanos` so that comparison stays exact for inputs with up to nine digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Seconds since 1970-01-01T00:00:00Z.
    secs: i64,
    /// Nanoseconds within the second.
    nanos: u32,
}

/// Why a string is not a STIX timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a STIX timestamp (YYYY-MM-DDTHH:MM:SS[.s+]Z): {reason}")]
pub struct TimestampError {
    /// What exactly is wrong.
    pub reason: &'static str,
}

fn err(reason: &'static str) -> TimestampError {
    TimestampError { reason }
}

fn digits(b: &[u8], range: std::ops::Range<usize>) -> Result<u32, TimestampError> {
    let mut v = 0u32;
    for &c in &b[range] {
        if !c.is_ascii_digit() {
            return Err(err("expected a digit"));
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Ok(v)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

impl Timestamp {
    /// Parses a STIX 2.1 timestamp. Only the UTC `Z` form is accepted, as the
    /// specification requires; leap seconds (`:60`) are accepted and folded into the
    /// next second, as RFC 3339 allows.
    pub fn parse(s: &str) -> Result<Self, TimestampError> {
        let b = s.as_bytes();
        if b.len() < 20 {
            return Err(err("too short"));
        }
        if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
            return Err(err("wrong separators"));
        }
        let year = digits(b, 0..4)?;
        let month = digits(b, 5..7)?;
        let day = digits(b, 8..10)?;
        let hour = digits(b, 11..13)?;
        let minute = digits(b, 14..16)?;
        let second = digits(b, 17..19)?;
        if !(1..=12).contains(&month) {
            return Err(err("month out of range"));
        }
        if day == 0 || day > days_in_month(i64::from(year), month) {
            return Err(err("day out of range"));
        }
        if hour > 23 || minute > 59 || second > 60 {
            return Err(err("time out of range"));
        }
        let mut i = 19;
        let mut nanos = 0u32;
        if b[i] == b'.' {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                if i - start < 9 {
                    nanos = nanos * 10 + u32::from(b[i] - b'0');
                }
                i += 1;
            }
            let n = i - start;
            if n == 0 {
                return Err(err("empty fraction"));
            }
            for _ in n..9 {
                nanos *= 10;
            }
        }
        if i + 1 != b.len() || b[i] != b'Z' {
            return Err(err("must end with Z (UTC)"));
        }
        let days = days_from_civil(i64::from(year), month, day);
        let secs =
            days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
        Ok(Timestamp { secs, nanos })
    }

    /// The current time, truncated to microseconds, shifted by the process's clock
    /// offset ([`set_clock_offset_secs`], zero unless a test set one).
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp {
            secs: (d.as_secs() as i64).saturating_add(CLOCK_OFFSET_SECS.load(Ordering::Relaxed)),
            nanos: d.subsec_micros() * 1000,
        }
    }

    /// [`Timestamp::parse`], also taking a plain date (`2026-12-01`, its first
    /// instant, UTC): what an operator types for "since".
    pub fn parse_day_or_instant(s: &str) -> Result<Self, TimestampError> {
        let b = s.as_bytes();
        if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
            return Timestamp::parse(&format!("{s}T00:00:00Z"));
        }
        Timestamp::parse(s)
    }

    /// Builds a timestamp from microseconds since the epoch.
    pub fn from_micros(micros: i64) -> Self {
        Timestamp {
            secs: micros.div_euclid(1_000_000),
            nanos: (micros.rem_euclid(1_000_000) as u32) * 1000,
        }
    }

    /// Microseconds since the epoch (sub-microsecond digits are dropped).
    pub fn as_micros(&self) -> i64 {
        self.secs * 1_000_000 + i64::from(self.nanos / 1000)
    }

    /// Seconds since the epoch.
    pub fn as_secs(&self) -> i64 {
        self.secs
    }

    /// Renders with exactly three fractional digits (`…T03:44:23.123Z`), the form
    /// STIX producers use most and the one we sign with.
    pub fn to_millis_string(&self) -> String {
        self.render(3)
    }

    /// Renders with exactly six fractional digits, as TAXII 2.1 requires for
    /// `date_added`.
    pub fn to_micros_string(&self) -> String {
        self.render(6)
    }

    fn render(&self, frac_digits: u32) -> String {
        let days = self.secs.div_euclid(86_400);
        let rem = self.secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let frac = self.nanos / 10u32.pow(9 - frac_digits);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:0width$}Z",
            rem / 3600,
            (rem / 60) % 60,
            rem % 60,
            width = frac_digits as usize
        )
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_millis_string())
    }
}

impl std::str::FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timestamp::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain date is its first instant, UTC; anything else is a timestamp or an
    /// error.
    #[test]
    fn a_plain_date_is_its_first_instant() {
        assert_eq!(
            Timestamp::parse_day_or_instant("2026-12-01").unwrap(),
            Timestamp::parse("2026-12-01T00:00:00Z").unwrap()
        );
        assert_eq!(
            Timestamp::parse_day_or_instant("2026-12-01T08:00:00.5Z").unwrap(),
            Timestamp::parse("2026-12-01T08:00:00.500Z").unwrap()
        );
        for bad in ["2026-13-01", "2026-02-30", "yesterday", "2026-12-1", ""] {
            assert!(Timestamp::parse_day_or_instant(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_and_renders() {
        let t = Timestamp::parse("2026-11-27T03:44:23.123Z").unwrap();
        assert_eq!(t.to_millis_string(), "2026-11-27T03:44:23.123Z");
        assert_eq!(t.to_micros_string(), "2026-11-27T03:44:23.123000Z");
        let t = Timestamp::parse("1970-01-01T00:00:00Z").unwrap();
        assert_eq!(t.as_micros(), 0);
        let t = Timestamp::parse("2000-02-29T23:59:59.999999Z").unwrap();
        assert_eq!(t.to_micros_string(), "2000-02-29T23:59:59.999999Z");
        assert_eq!(Timestamp::from_micros(t.as_micros()), t);
    }

    #[test]
    fn orders_by_instant_not_text() {
        let a = Timestamp::parse("2026-01-01T00:00:00.5Z").unwrap();
        let b = Timestamp::parse("2026-01-01T00:00:00.123456789Z").unwrap();
        assert!(b < a);
        let c = Timestamp::parse("2026-01-01T00:00:00.500Z").unwrap();
        assert_eq!(a, c);
    }

    #[test]
    fn rejects_non_stix_forms() {
        for bad in [
            "2026-11-27T03:44:23+00:00",
            "2026-11-27 03:44:23Z",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-27T24:00:00Z",
            "2026-11-27T03:44:23.Z",
            "2026-11-27T03:44:23z",
            "2026-11-27",
            "",
            "2026-11-27T03:44:23.123Zx",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad}");
        }
    }
}
