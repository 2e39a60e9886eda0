//! TIME arguments: RFC 3339 (`2026-11-30T05:00:00Z`, offsets allowed) or epoch seconds.

use anyhow::{anyhow, Result};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Epoch seconds of an RFC 3339 time or of a number of epoch seconds.
pub fn parse_time(s: &str) -> Result<f64> {
    let t = s.trim();
    if let Ok(x) = t.parse::<f64>() {
        if x.is_finite() && x.abs() < 1e11 {
            return Ok(x);
        }
    }
    let dt = OffsetDateTime::parse(t, &Rfc3339)
        .map_err(|e| anyhow!("{s:?} is neither RFC 3339 (e.g. 2026-11-30T05:00:00Z) nor epoch seconds: {e}"))?;
    Ok(dt.unix_timestamp_nanos() as f64 / 1e9)
}

/// RFC 3339 in UTC, to the second.
pub fn format(epoch: f64) -> String {
    let (y, m, d, hh, mm, ss) = wire::time::civil(epoch.floor() as i64);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_and_epoch_seconds() {
        assert_eq!(parse_time("1427726689").unwrap(), 1_427_726_689.0);
        assert_eq!(parse_time("1427726689.5").unwrap(), 1_427_726_689.5);
        assert_eq!(parse_time("2015-03-30T14:44:49Z").unwrap(), 1_427_726_689.0);
        assert_eq!(parse_time("2015-03-30T16:44:49+02:00").unwrap(), 1_427_726_689.0);
        for bad in ["", "yesterday", "2015-03-30", "NaN", "inf", "1e300"] {
            assert!(parse_time(bad).is_err(), "{bad:?}");
        }
        assert_eq!(format(1_427_726_689.9), "2015-03-30T14:44:49Z");
    }
}
