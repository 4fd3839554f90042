//! Wall-clock formatting for reports, in UTC, without a time-zone
//! database (civil-from-days after Howard Hinnant's public algorithm).

use std::time::{SystemTime, UNIX_EPOCH};

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
}
