//! Reading `traffic_rollup` (maintained by the ingestor, migration 0002): a time range becomes
//! whole hours plus the minutes at its edges, so a day's top talkers sum ~24 hour rows per key
//! instead of scanning every packet. Minutes are the finest grain: the range is widened to whole
//! minutes and answers say which range they cover.

use crate::sql::TimeRange;

/// One slice of a range read at one bucket width: `[lo, hi)` epoch seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slice {
    pub width: i16,
    pub lo: f64,
    pub hi: f64,
}

/// The range widened to whole minutes, and the slices covering it exactly: whole hours at hour
/// width, the rest at minute width.
pub fn plan(r: &TimeRange) -> (TimeRange, Vec<Slice>) {
    let m0 = (r.from / 60.0).floor() * 60.0;
    let m1 = (r.to / 60.0).ceil() * 60.0;
    let h0 = (m0 / 3600.0).ceil() * 3600.0;
    let h1 = (m1 / 3600.0).floor() * 3600.0;
    let widened = TimeRange { from: m0, to: m1 };
    if h1 <= h0 {
        return (widened, vec![Slice { width: 60, lo: m0, hi: m1 }]);
    }
    let mut slices = vec![Slice { width: 3600, lo: h0, hi: h1 }];
    if m0 < h0 {
        slices.push(Slice { width: 60, lo: m0, hi: h0 });
    }
    if h1 < m1 {
        slices.push(Slice { width: 60, lo: h1, hi: m1 });
    }
    (widened, slices)
}

/// `SELECT bucket, value, packets, bytes` of rollup rows of `dim` over the slices, as a
/// subquery. The numbers come from [`plan`] (floats and widths, never user text); `dim` is a
/// constant of the caller.
pub fn rows_sql(dim: &'static str, slices: &[Slice]) -> String {
    slices
        .iter()
        .map(|s| {
            format!(
                "SELECT bucket, value, packets, bytes FROM traffic_rollup WHERE width = {} AND dim = '{dim}' \
                 AND bucket >= to_timestamp({:.0}) AND bucket < to_timestamp({:.0})",
                s.width, s.lo, s.hi
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// Whether a range is long enough to read from the rollup rather than raw packets: past 15
/// minutes the packet scan grows with traffic while the minute widening stays small.
pub fn worth_it(r: &TimeRange) -> bool {
    r.seconds() > 900.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covered(slices: &[Slice]) -> Vec<(f64, f64)> {
        let mut v: Vec<_> = slices.iter().map(|s| (s.lo, s.hi)).collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    }

    #[test]
    fn plans_cover_the_widened_range_exactly_once() {
        // 24 h ending mid-hour: minutes, 23 hours, minutes.
        let r = TimeRange { from: 1_700_000_030.0 - 86400.0, to: 1_700_000_030.0 };
        let (w, s) = plan(&r);
        assert_eq!((w.from, w.to), (1_699_913_580.0, 1_700_000_040.0));
        let c = covered(&s);
        assert_eq!(c.first().unwrap().0, w.from);
        assert_eq!(c.last().unwrap().1, w.to);
        assert!(c.windows(2).all(|p| p[0].1 == p[1].0), "{c:?}");
        assert_eq!(s.iter().filter(|x| x.width == 3600).count(), 1);
        for x in &s {
            assert_eq!(x.lo % x.width as f64, 0.0);
            assert_eq!(x.hi % x.width as f64, 0.0);
        }
        // Under two hours with no whole hour inside: minutes only.
        let (_, s) = plan(&TimeRange { from: 1_700_000_000.0, to: 1_700_003_000.0 });
        assert!(s.iter().all(|x| x.width == 60) && s.len() == 1);
        // Hour-aligned: hours only.
        let (_, s) = plan(&TimeRange { from: 1_699_999_200.0, to: 1_700_006_400.0 });
        assert_eq!(s, vec![Slice { width: 3600, lo: 1_699_999_200.0, hi: 1_700_006_400.0 }]);
    }
}
