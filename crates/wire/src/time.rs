//! Calendar fields of epoch seconds (UTC), for the few places that print dates; Howard
//! Hinnant's civil-from-days algorithm, which avoids a date crate for one function.

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

#[cfg(test)]
mod tests {
    #[test]
    fn known_dates() {
        assert_eq!(super::civil(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(super::civil(1_427_726_689), (2015, 3, 30, 14, 44, 49));
        assert_eq!(super::civil(-1), (1969, 12, 31, 23, 59, 59));
        assert_eq!(super::civil(951_782_400), (2000, 2, 29, 0, 0, 0));
    }
}
