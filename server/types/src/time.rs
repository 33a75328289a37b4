//! Event time: SageMaker's accepted forms, parsed to milliseconds since the Unix epoch, and the
//! clock that TTLs are measured against.
//!
//! Accepted forms, exactly (as SageMaker): for String event-time features `yyyy-MM-dd'T'HH:mm:ssZ`
//! and `yyyy-MM-dd'T'HH:mm:ss.SSSZ` (UTC); for Fractional ones, epoch seconds with up to
//! millisecond precision. Years 0000..9999.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Milliseconds since 1970-01-01T00:00:00Z.
pub type EpochMillis = i64;

/// 0000-01-01T00:00:00.000Z.
pub const MIN_EVENT_TIME_MS: EpochMillis = -62_167_219_200_000;
/// 9999-12-31T23:59:59.999Z.
pub const MAX_EVENT_TIME_MS: EpochMillis = 253_402_300_799_999;

/// Parses `yyyy-MM-ddTHH:mm:ssZ` or `yyyy-MM-ddTHH:mm:ss.SSSZ`; the error says which rule failed.
pub fn parse_iso8601(text: &str) -> Result<EpochMillis, String> {
    const FORMS: &str = "expected yyyy-MM-dd'T'HH:mm:ssZ or yyyy-MM-dd'T'HH:mm:ss.SSSZ (UTC)";
    let bytes = text.as_bytes();
    let shape_ok = match bytes.len() {
        20 => matches_shape(bytes, b"dddd-dd-ddTdd:dd:ddZ"),
        24 => matches_shape(bytes, b"dddd-dd-ddTdd:dd:dd.dddZ"),
        _ => false,
    };
    if !shape_ok {
        return Err(FORMS.to_string());
    }
    let num = |range: std::ops::Range<usize>| -> i64 {
        bytes[range]
            .iter()
            .fold(0i64, |acc, b| acc * 10 + i64::from(b - b'0'))
    };
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    let (hour, minute, second) = (num(11..13), num(14..16), num(17..19));
    let millis = if bytes.len() == 24 { num(20..23) } else { 0 };
    if !(1..=12).contains(&month) {
        return Err(format!("month {month:02} is not 01..12"));
    }
    let days_in_month = days_in_month(year, month);
    if day < 1 || day > days_in_month {
        return Err(format!(
            "day {day:02} is not 01..{days_in_month} for {year:04}-{month:02}"
        ));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(format!(
            "time {hour:02}:{minute:02}:{second:02} is not a valid time of day"
        ));
    }
    let days = days_from_civil(year, month, day);
    Ok(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

/// Converts epoch seconds (a Fractional event-time value) to milliseconds.
pub fn epoch_seconds_to_millis(seconds: f64) -> Result<EpochMillis, String> {
    if !seconds.is_finite() {
        return Err("epoch seconds must be a finite number".to_string());
    }
    let millis = (seconds * 1000.0).round();
    if millis < MIN_EVENT_TIME_MS as f64 || millis > MAX_EVENT_TIME_MS as f64 {
        return Err("epoch seconds must fall in years 0000..9999".to_string());
    }
    // In range, so the conversion is exact enough and cannot saturate.
    Ok(millis as i64)
}

/// Parses epoch seconds written as a decimal (`1700000000`, `1700000000.123`, `-5.5`).
pub fn parse_epoch_seconds(text: &str) -> Result<EpochMillis, String> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    let is_decimal = !int_part.is_empty()
        && int_part.bytes().all(|b| b.is_ascii_digit())
        && frac_part.bytes().all(|b| b.is_ascii_digit())
        && !(digits.contains('.') && frac_part.is_empty());
    if !is_decimal {
        return Err("expected epoch seconds as a decimal number".to_string());
    }
    let seconds: f64 = text
        .parse()
        .map_err(|_| "expected epoch seconds as a decimal number".to_string())?;
    epoch_seconds_to_millis(seconds)
}

/// Parses either accepted form; used where the form is not tied to a feature type (DeleteRecord).
pub fn parse_any(text: &str) -> Result<EpochMillis, String> {
    if text.contains('T') {
        parse_iso8601(text)
    } else {
        parse_epoch_seconds(text).map_err(|_| {
            "expected yyyy-MM-dd'T'HH:mm:ssZ, yyyy-MM-dd'T'HH:mm:ss.SSSZ or epoch seconds"
                .to_string()
        })
    }
}

/// Formats as `yyyy-MM-ddTHH:mm:ss.SSSZ`; times past year 9999 are clamped to its last millisecond.
pub fn format_iso8601(millis: EpochMillis) -> String {
    let millis = millis.clamp(MIN_EVENT_TIME_MS, MAX_EVENT_TIME_MS);
    let days = millis.div_euclid(86_400_000);
    let in_day = millis.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

/// The UTC (year, month, day, hour) of `millis`, clamped to years 0000..9999.
pub fn civil_hour(millis: EpochMillis) -> (i64, i64, i64, i64) {
    let millis = millis.clamp(MIN_EVENT_TIME_MS, MAX_EVENT_TIME_MS);
    let (year, month, day) = civil_from_days(millis.div_euclid(86_400_000));
    (year, month, day, millis.rem_euclid(86_400_000) / 3_600_000)
}

/// Formats as epoch seconds, the form of a Fractional event-time feature.
pub fn format_epoch_seconds(millis: EpochMillis) -> f64 {
    millis as f64 / 1000.0
}

fn matches_shape(bytes: &[u8], shape: &[u8]) -> bool {
    bytes.iter().zip(shape).all(|(b, s)| match s {
        b'd' => b.is_ascii_digit(),
        other => b == other,
    })
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
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

/// The time TTLs are measured against; injected so tests control it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_ms(&self) -> EpochMillis;
}

/// The wall clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> EpochMillis {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(start: EpochMillis) -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(start)))
    }

    pub fn advance_ms(&self, millis: i64) {
        self.0.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> EpochMillis {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_iso_forms() {
        assert_eq!(parse_iso8601("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_iso8601("1970-01-01T00:00:01.250Z"), Ok(1250));
        assert_eq!(parse_iso8601("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert_eq!(parse_iso8601("0000-01-01T00:00:00Z"), Ok(MIN_EVENT_TIME_MS));
        assert_eq!(
            parse_iso8601("9999-12-31T23:59:59.999Z"),
            Ok(MAX_EVENT_TIME_MS)
        );
        assert_eq!(parse_iso8601("2024-02-29T12:00:00Z").map(|_| ()), Ok(()));
    }

    #[test]
    fn rejects_other_forms() {
        for bad in [
            "2023-11-14",
            "2023-11-14T22:13:20",
            "2023-11-14T22:13:20+00:00",
            "2023-11-14 22:13:20Z",
            "2023-11-14T22:13:20.1Z",
            "2023-11-14T22:13:20.123456Z",
            "2023-13-14T22:13:20Z",
            "2023-02-29T22:13:20Z",
            "2023-11-14T24:00:00Z",
            "2023-11-14T22:60:00Z",
            "+023-11-14T22:13:20Z",
            "",
        ] {
            assert!(parse_iso8601(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn format_round_trips() {
        for ms in [
            0,
            1_700_000_000_123,
            MIN_EVENT_TIME_MS,
            MAX_EVENT_TIME_MS,
            -1,
        ] {
            assert_eq!(parse_iso8601(&format_iso8601(ms)), Ok(ms));
        }
    }

    #[test]
    fn epoch_seconds() {
        assert_eq!(parse_epoch_seconds("1700000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_epoch_seconds("1700000000.5"), Ok(1_700_000_000_500));
        assert_eq!(parse_epoch_seconds("-1.5"), Ok(-1500));
        for bad in ["", "1e9", "NaN", "inf", "1.", ".5", "12a", "99999999999999"] {
            assert!(
                parse_epoch_seconds(bad).is_err(),
                "{bad} should be rejected"
            );
        }
        assert!(epoch_seconds_to_millis(f64::NAN).is_err());
        assert!(epoch_seconds_to_millis(1e300).is_err());
    }

    #[test]
    fn parse_any_accepts_both() {
        assert_eq!(parse_any("1970-01-01T00:00:02Z"), Ok(2000));
        assert_eq!(parse_any("2"), Ok(2000));
        assert!(parse_any("yesterday").is_err());
    }
}
