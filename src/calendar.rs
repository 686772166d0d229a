//! Unix times, typed by unit, and as dates for people.
//!
//! [`UnixSecs`] and [`UnixMillis`] keep seconds and milliseconds apart: a time changes
//! unit only through `UnixSecs::to_millis` or `UnixMillis::to_secs`, never by a bare
//! `* 1000`. Both are `#[serde(transparent)]`, so they encode exactly as the `i64` they
//! wrap: the JSON the admin API and the CLI print and the postcard bytes in the store are
//! the same as before the types existed. Their arithmetic saturates: a damaged stored
//! time must not panic.
//!
//! The dates are `YYYY-MM-DD` (and `HH:MM UTC`), without a date crate, for the two places
//! that print one.

use serde::{Deserialize, Serialize};
use std::ops::{Add, Sub};
use std::time::{SystemTime, UNIX_EPOCH};

/// A unix time in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixSecs(pub i64);

/// A unix time in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixMillis(pub i64);

impl UnixSecs {
    /// The current time, whole seconds (the milliseconds of [`UnixMillis::now`], cut).
    pub fn now() -> UnixSecs {
        UnixMillis::now().to_secs()
    }

    pub fn get(self) -> i64 {
        self.0
    }

    /// The same instant in milliseconds.
    pub(crate) fn to_millis(self) -> UnixMillis {
        UnixMillis(self.0.saturating_mul(1000))
    }
}

impl UnixMillis {
    /// The current time; 0 on a clock set before 1970.
    pub fn now() -> UnixMillis {
        UnixMillis(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }

    pub fn get(self) -> i64 {
        self.0
    }

    /// The whole second this instant falls in (rounded down, also before 1970).
    pub(crate) fn to_secs(self) -> UnixSecs {
        UnixSecs(self.0.div_euclid(1000))
    }
}

/// Later by a number of seconds.
impl Add<i64> for UnixSecs {
    type Output = UnixSecs;
    fn add(self, secs: i64) -> UnixSecs {
        UnixSecs(self.0.saturating_add(secs))
    }
}

/// Earlier by a number of seconds.
impl Sub<i64> for UnixSecs {
    type Output = UnixSecs;
    fn sub(self, secs: i64) -> UnixSecs {
        UnixSecs(self.0.saturating_sub(secs))
    }
}

/// `YYYY-MM-DD` of a day counted from 1970-01-01 (proleptic Gregorian calendar).
pub fn civil_date(days: i64) -> String {
    let (year, month, day) = civil(days);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The month of a day counted from 1970-01-01, as months since year 0 (`year * 12 +
/// month - 1`): consecutive months are consecutive numbers, for keys and budgets.
pub(crate) fn civil_month(days: i64) -> u32 {
    let (year, month, _) = civil(days);
    u32::try_from(year * 12 + month - 1).unwrap_or(0)
}

/// Year, month (1..=12) and day (1..=31) of a day counted from 1970-01-01.
fn civil(days: i64) -> (i64, i64, i64) {
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The day (counted from 1970-01-01) of a `YYYY-MM-DD` date; `None` for anything else,
/// including dates that do not exist such as `2025-02-30`.
pub(crate) fn parse_civil_date(text: &str) -> Option<i64> {
    let mut parts = text.split('-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return None;
    }
    let (year, month, day): (i64, i64, i64) =
        (year.parse().ok()?, month.parse().ok()?, day.parse().ok()?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    // A day past the month's end comes back as another date: refuse it.
    (civil_date(days) == text).then_some(days)
}

/// `YYYY-MM-DD HH:MM UTC` of a unix time.
pub(crate) fn utc_minute(at: UnixSecs) -> String {
    let secs = at.get();
    let rem = secs.rem_euclid(86_400);
    format!(
        "{} {:02}:{:02} UTC",
        civil_date(secs.div_euclid(86_400)),
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_count_on_across_years() {
        let day = |date| parse_civil_date(date).unwrap();
        assert_eq!(civil_month(0), 1970 * 12);
        assert_eq!(civil_month(day("2026-12-31")), 2026 * 12 + 11);
        assert_eq!(civil_month(day("2027-01-01")), 2027 * 12);
        assert_eq!(civil_month(day("2024-02-29")), 2024 * 12 + 1);
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(-1), "1969-12-31");
        assert_eq!(civil_date(11_016), "2000-02-29");
        assert_eq!(civil_date(20_454), "2026-01-01");
    }

    #[test]
    fn dates_parse_back() {
        for days in [-1, 0, 11_016, 20_454, 30_000] {
            assert_eq!(parse_civil_date(&civil_date(days)), Some(days));
        }
        for bad in [
            "2025-02-30",
            "2025-13-01",
            "25-01-01",
            "2025-1-01",
            "x",
            "2025-01-01-1",
        ] {
            assert_eq!(parse_civil_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn minutes() {
        assert_eq!(utc_minute(UnixSecs(0)), "1970-01-01 00:00 UTC");
        assert_eq!(utc_minute(UnixSecs(951_782_400)), "2000-02-29 00:00 UTC");
        assert_eq!(utc_minute(UnixSecs(1_798_761_599)), "2026-12-31 23:59 UTC");
        assert_eq!(utc_minute(UnixSecs(-60)), "1969-12-31 23:59 UTC");
    }

    #[test]
    fn units_convert_explicitly() {
        assert_eq!(
            UnixSecs(1_700_000_000).to_millis(),
            UnixMillis(1_700_000_000_000)
        );
        assert_eq!(
            UnixMillis(1_700_000_000_999).to_secs(),
            UnixSecs(1_700_000_000)
        );
        assert_eq!(UnixMillis(-1).to_secs(), UnixSecs(-1), "rounded down");
        assert_eq!(
            UnixSecs(i64::MAX).to_millis(),
            UnixMillis(i64::MAX),
            "saturates"
        );
        assert_eq!(UnixSecs(100) + 20, UnixSecs(120));
        assert_eq!(UnixSecs(100) - 20, UnixSecs(80));
        assert_eq!(UnixSecs(i64::MIN) - 1, UnixSecs(i64::MIN), "saturates");
        let secs = UnixSecs::now();
        assert!(secs > UnixSecs(1_600_000_000));
        assert!(UnixMillis::now().to_secs() >= secs);
    }

    /// Transparent: the JSON and the postcard bytes are those of the bare `i64`, so the
    /// admin API prints the same numbers and stored records read as they were written.
    #[test]
    fn encodings_are_those_of_the_bare_number() {
        for n in [
            0,
            1,
            -1,
            1_700_000_000,
            1_700_000_000_123,
            i64::MIN,
            i64::MAX,
        ] {
            let json = serde_json::to_string(&n).unwrap();
            assert_eq!(serde_json::to_string(&UnixSecs(n)).unwrap(), json);
            assert_eq!(serde_json::to_string(&UnixMillis(n)).unwrap(), json);
            assert_eq!(
                serde_json::from_str::<UnixSecs>(&json).unwrap(),
                UnixSecs(n)
            );
            let bytes = postcard::to_allocvec(&n).unwrap();
            assert_eq!(postcard::to_allocvec(&UnixSecs(n)).unwrap(), bytes);
            assert_eq!(postcard::to_allocvec(&UnixMillis(n)).unwrap(), bytes);
            assert_eq!(
                postcard::from_bytes::<UnixMillis>(&bytes).unwrap(),
                UnixMillis(n)
            );
        }
    }
}
