//! Calendar fields of epoch seconds (UTC), for the few places that print or read dates; Howard
//! Hinnant's civil-from-days algorithms, which avoid a date crate for two functions.

/// (year, month, day, hour, minute, second) of `epoch` seconds, UTC.
pub fn civil(epoch: i64) -> (i64, u32, u32, u32, u32, u32) {
    let (days, secs) = (epoch.div_euclid(86_400), epoch.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m as u32, d as u32, (secs / 3600) as u32, (secs % 3600 / 60) as u32, (secs % 60) as u32)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Epoch nanoseconds of a time given as RFC 3339 (`2026-11-30T05:00:00Z`, `...05:00:00.25+01:00`;
/// a space may replace the `T`) or as epoch seconds (`1764478800`, `1764478800.123456789`).
pub fn parse_ns(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let bad = || format!("{text:?} is neither RFC 3339 (2026-11-30T05:00:00Z) nor epoch seconds");
    if t.is_empty() {
        return Err(bad());
    }
    if t.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'-') && !t[1..].contains('-') {
        let (neg, digits) = t.strip_prefix('-').map_or((false, t), |r| (true, r));
        let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty() || frac.len() > 9 || frac.contains('.') {
            return Err(bad());
        }
        let secs: i64 = whole.parse().map_err(|_| bad())?;
        let nanos: i64 = if frac.is_empty() { 0 } else { format!("{frac:0<9}").parse().map_err(|_| bad())? };
        let ns = secs.checked_mul(1_000_000_000).and_then(|s| s.checked_add(nanos)).ok_or_else(bad)?;
        return Ok(if neg { -ns } else { ns });
    }
    let b = t.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
        let s = t.get(r).ok_or_else(bad)?;
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().map_err(|_| bad())
        } else {
            Err(bad())
        }
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let (y, mo, d, h, mi, s) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    let mut i = 19;
    let mut nanos = 0i64;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = &t[start..i];
        if frac.is_empty() || frac.len() > 9 {
            return Err(bad());
        }
        nanos = format!("{frac:0<9}").parse().map_err(|_| bad())?;
    }
    let offset = match &t[i..] {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) && o.as_bytes()[3] == b':' => {
            let secs = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if o.starts_with('-') {
                -secs
            } else {
                secs
            }
        }
        _ => return Err(bad()),
    };
    let days_in = [
        31,
        if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo) || d < 1 || d > days_in[mo as usize - 1] || h > 23 || mi > 59 || s > 60 {
        return Err(bad());
    }
    let secs = days_from_civil(y, mo as u32, d as u32) * 86_400 + h * 3600 + mi * 60 + s - offset;
    secs.checked_mul(1_000_000_000).and_then(|v| v.checked_add(nanos)).ok_or_else(bad)
}

/// RFC 3339 in UTC with nanoseconds (`2015-03-30T14:44:49.123456789Z`), for messages.
pub fn format_ns(ns: i64) -> String {
    let (secs, nanos) = (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000));
    let (y, mo, d, h, mi, s) = civil(secs);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{nanos:09}Z")
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_rfc3339_and_epoch_seconds() {
        use super::{format_ns, parse_ns};
        assert_eq!(parse_ns("2015-03-30T14:44:49Z"), Ok(1_427_726_689_000_000_000));
        assert_eq!(parse_ns("2015-03-30 16:44:49.5+02:00"), Ok(1_427_726_689_500_000_000));
        assert_eq!(parse_ns("1427726689.000000001"), Ok(1_427_726_689_000_000_001));
        assert_eq!(parse_ns("1427726689"), Ok(1_427_726_689_000_000_000));
        assert_eq!(parse_ns("-1.5"), Ok(-1_500_000_000));
        for bad in
            ["", "yesterday", "2015-13-01T00:00:00Z", "2015-02-29T00:00:00Z", "2015-03-30T14:44:49", "1.2.3", "1e9"]
        {
            assert!(parse_ns(bad).is_err(), "{bad}");
        }
        assert_eq!(format_ns(1_427_726_689_000_000_001), "2015-03-30T14:44:49.000000001Z");
        assert_eq!(parse_ns(&format_ns(-1)), Ok(-1));
    }

    #[test]
    fn known_dates() {
        assert_eq!(super::civil(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(super::civil(1_427_726_689), (2015, 3, 30, 14, 44, 49));
        assert_eq!(super::civil(-1), (1969, 12, 31, 23, 59, 59));
        assert_eq!(super::civil(951_782_400), (2000, 2, 29, 0, 0, 0));
    }
}
