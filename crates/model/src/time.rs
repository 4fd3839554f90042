//! Wall-clock times for reports and records, in UTC, without a time-zone
//! database (civil-from-days and days-from-civil after Howard Hinnant's
//! public algorithms): nmap's layouts for its formats, and RFC 3339 for
//! ours, written and read back.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `YYYY-MM-DD HH:MM UTC`, as in nmap's "Starting ... at" line.
pub fn minute_utc(t: SystemTime) -> String {
    let (y, m, d, hh, mm, _) = civil(t);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02} UTC")
}

/// `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339).
pub fn rfc3339(t: SystemTime) -> String {
    let (y, m, d, hh, mm, ss) = civil(t);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` (RFC 3339 with microseconds): how the
/// serde form of the model writes times, so that nothing is lost between
/// a scan and its record.
pub fn rfc3339_micros(t: SystemTime) -> String {
    let (y, m, d, hh, mm, ss) = civil(t);
    let micros = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_micros());
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{micros:06}Z")
}

/// Reads an RFC 3339 time (`2026-11-24T15:43:00Z`, with or without a
/// fraction of a second, `Z` or a numeric offset such as `+01:00`);
/// `None` for anything else, or a time before 1970.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = text.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())
            .flatten()
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) || hh > 23 || mm > 59 || ss > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        for (i, c) in frac.bytes().take(digits).enumerate() {
            if i < 9 {
                nanos += u32::from(c - b'0') * 10u32.pow(8 - i as u32);
            }
        }
        rest = &frac[digits..];
    }
    let offset: i64 = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            let r = rest.as_bytes();
            if r.len() != 6
                || r[3] != b':'
                || !r[1..3].iter().chain(&r[4..6]).all(u8::is_ascii_digit)
            {
                return None;
            }
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    let days = days_from_civil(i64::from(y), m, d);
    let secs = days * 86_400 + i64::from(hh * 3600 + mm * 60 + ss.min(59)) - offset;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        2 if y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a civil date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `Tue Nov 24 18:45:19 2026`: C's `ctime` layout (in UTC), as nmap's
/// `startstr` and `timestr` attributes and grepable comments use it.
pub fn ctime_utc(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, m, d, hh, mm, ss) = civil(t);
    // 1970-01-01 was a Thursday.
    let weekday = (unix_seconds(t) / 86_400 + 4) % 7;
    format!(
        "{} {} {d:2} {hh:02}:{mm:02}:{ss:02} {y}",
        DAYS[weekday as usize],
        MONTHS[(m - 1) as usize]
    )
}

/// The month (1-12) and the day of the month of `t`, in UTC.
pub fn month_day_utc(t: SystemTime) -> (u32, u32) {
    let (_, m, d, ..) = civil(t);
    (m, d)
}

/// Seconds since the Unix epoch (0 before it).
pub fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn civil(t: SystemTime) -> (i64, u32, u32, u32, u32, u32) {
    let secs = unix_seconds(t) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400) as u32;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, rem / 3600, rem / 60 % 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn known_dates() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_534_980);
        assert_eq!(rfc3339(t), "2026-11-24T15:43:00Z");
        assert_eq!(minute_utc(UNIX_EPOCH), "1970-01-01 00:00 UTC");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
        assert_eq!(ctime_utc(t), "Tue Nov 24 15:43:00 2026");
        assert_eq!(ctime_utc(leap), "Tue Feb 29 00:00:00 2000");
        assert_eq!(ctime_utc(UNIX_EPOCH), "Thu Jan  1 00:00:00 1970");
    }

    #[test]
    fn rfc3339_reads_back_what_it_writes() {
        for secs in [0u64, 951_782_400, 1_795_534_980, 4_102_444_800] {
            for micros in [0u32, 1, 999_999] {
                let t = UNIX_EPOCH + Duration::new(secs, micros * 1000);
                assert_eq!(
                    parse_rfc3339(&rfc3339_micros(t)),
                    Some(t),
                    "{secs} {micros}"
                );
                let whole = UNIX_EPOCH + Duration::from_secs(secs);
                assert_eq!(parse_rfc3339(&rfc3339(t)), Some(whole));
            }
        }
        let t = UNIX_EPOCH + Duration::from_secs(1_795_534_980);
        assert_eq!(parse_rfc3339("2026-11-24T16:43:00+01:00"), Some(t));
        assert_eq!(parse_rfc3339("2026-11-24T10:43:00-05:00"), Some(t));
        for bad in [
            "",
            "2026-11-24",
            "2026-11-24T15:43:00",
            "2026-13-24T15:43:00Z",
            "2026-02-30T15:43:00Z",
            "2026-11-24T24:00:00Z",
            "2026-11-24T15:43:00.Z",
            "2026-11-24T15:43:00+1:00",
            "1969-12-31T23:59:59Z",
            "2026-11-24T15:43:00Zjunk",
            "２０２６-11-24T15:43:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
