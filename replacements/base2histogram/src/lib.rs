//! A log-linear histogram: values are counted in buckets four to a power of two, so a bucket's
//! width is at most 1/8 of its values and any percentile is known to within 12.5 %.
//!
//! Owns: the bucket arithmetic, percentile estimates, and a plain-text chart. Everything is
//! computed from the value itself: no tables, no global state.

use std::fmt;
use std::marker::PhantomData;

/// Buckets per power of two.
const PER_OCTAVE: u64 = 4;
/// Bits of a value below its most significant one that choose the bucket in its octave.
const OFFSET_BITS: u32 = PER_OCTAVE.trailing_zeros();
/// Values `0..PER_OCTAVE` each have a bucket of their own; above, 4 buckets for each of the
/// 62 octaves from `2^2` up to `2^63`: 252 in all.
pub const BUCKETS: usize = (PER_OCTAVE + PER_OCTAVE * (u64::BITS as u64 - 2)) as usize;

/// The bucket counting `value`.
pub fn bucket_of(value: u64) -> usize {
    if value < PER_OCTAVE {
        return value as usize;
    }
    let msb = u64::BITS - 1 - value.leading_zeros();
    let shift = msb - OFFSET_BITS;
    let offset = (value >> shift) & (PER_OCTAVE - 1);
    (PER_OCTAVE + u64::from(shift) * PER_OCTAVE + offset) as usize
}

/// The smallest value counted in `bucket`.
pub fn bucket_min(bucket: usize) -> u64 {
    let bucket = bucket as u64;
    if bucket < PER_OCTAVE {
        return bucket;
    }
    let shift = (bucket - PER_OCTAVE) / PER_OCTAVE;
    let offset = (bucket - PER_OCTAVE) % PER_OCTAVE;
    (PER_OCTAVE | offset) << shift
}

/// The largest value counted in `bucket`.
pub fn bucket_max(bucket: usize) -> u64 {
    if bucket + 1 >= BUCKETS {
        return u64::MAX;
    }
    bucket_min(bucket + 1) - 1
}

/// Counts of recorded values. `T` is accepted for compatibility with base2histogram's type
/// (its per-period metadata); this histogram keeps a single period and no metadata.
pub struct Histogram<T = ()> {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    _metadata: PhantomData<fn() -> T>,
}

impl<T> Histogram<T> {
    pub fn new() -> Self {
        Self {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            _metadata: PhantomData,
        }
    }

    pub fn record(&mut self, value: u64) {
        self.record_n(value, 1);
    }

    /// Counts `value` `n` times.
    pub fn record_n(&mut self, value: u64, n: u64) {
        self.counts[bucket_of(value)] += n;
        self.total += n;
    }

    /// How many values were recorded.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The value below which a fraction `p` (0.0..=1.0) of the recorded values lie, as the
    /// midpoint of the bucket holding it; 0 when nothing was recorded.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
        // The rank of the wanted value, 1-based: the first value for p = 0, the last for 1.
        let rank = ((p * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (bucket, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let (low, high) = (bucket_min(bucket), bucket_max(bucket));
                return low + (high - low) / 2;
            }
        }
        unreachable!("total counts every recorded value")
    }

    pub fn percentile_stats(&self) -> PercentileStats {
        PercentileStats {
            samples: self.total,
            p0_1: self.percentile(0.001),
            p1: self.percentile(0.01),
            p5: self.percentile(0.05),
            p10: self.percentile(0.10),
            p50: self.percentile(0.50),
            p90: self.percentile(0.90),
            p99: self.percentile(0.99),
            p99_9: self.percentile(0.999),
        }
    }

    /// `(smallest value, largest value, count)` of every bucket holding a value, in order.
    pub fn non_empty_buckets(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .map(|(bucket, &count)| (bucket_min(bucket), bucket_max(bucket), count))
    }
}

impl<T> Default for Histogram<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for Histogram<T> {
    fn clone(&self) -> Self {
        Self {
            counts: self.counts.clone(),
            total: self.total,
            _metadata: PhantomData,
        }
    }
}

impl<T> PartialEq for Histogram<T> {
    fn eq(&self, other: &Self) -> bool {
        self.total == other.total && self.counts == other.counts
    }
}

impl<T> Eq for Histogram<T> {}

impl<T> fmt::Debug for Histogram<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("total", &self.total)
            .field("buckets", &self.non_empty_buckets().collect::<Vec<_>>())
            .finish()
    }
}

/// Percentile estimates of one histogram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PercentileStats {
    pub samples: u64,
    pub p0_1: u64,
    pub p1: u64,
    pub p5: u64,
    pub p10: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p99_9: u64,
}

impl fmt::Display for PercentileStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "samples={} p0.1={} p1={} p5={} p10={} p50={} p90={} p99={} p99.9={}",
            self.samples,
            self.p0_1,
            self.p1,
            self.p5,
            self.p10,
            self.p50,
            self.p90,
            self.p99,
            self.p99_9
        )
    }
}

/// Several named histograms side by side: one row per bucket that holds a value in any of
/// them, one column of counts per histogram.
#[derive(Clone, Debug, Default)]
pub struct AsciiChart {
    series: Vec<(String, Histogram)>,
}

impl AsciiChart {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add<T>(mut self, name: impl Into<String>, histogram: Histogram<T>) -> Self {
        let Histogram { counts, total, .. } = histogram;
        self.series.push((
            name.into(),
            Histogram {
                counts,
                total,
                _metadata: PhantomData,
            },
        ));
        self
    }
}

impl fmt::Display for AsciiChart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:>24}", "value range")?;
        for (name, _) in &self.series {
            write!(f, " | {name}")?;
        }
        writeln!(f)?;
        for bucket in 0..BUCKETS {
            if self.series.iter().all(|(_, h)| h.counts[bucket] == 0) {
                continue;
            }
            let range = format!("{}..={}", bucket_min(bucket), bucket_max(bucket));
            write!(f, "{range:>24}")?;
            for (name, h) in &self.series {
                write!(
                    f,
                    " | {:>width$}",
                    h.counts[bucket],
                    width = name.chars().count()
                )?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_tile_the_whole_range_in_order() {
        assert_eq!(bucket_min(0), 0);
        for bucket in 1..BUCKETS {
            assert_eq!(
                bucket_min(bucket),
                bucket_max(bucket - 1) + 1,
                "bucket {bucket}"
            );
        }
        assert_eq!(bucket_max(BUCKETS - 1), u64::MAX);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn every_value_lands_in_the_bucket_that_spans_it() {
        let samples = (0..5000u64)
            .chain((0..64).flat_map(|s| [1u64 << s, (1u64 << s) - 1, (1u64 << s) + 1]))
            .chain([u64::MAX, u64::MAX - 1, 0x1234_5678_9abc_def0]);
        for v in samples {
            let b = bucket_of(v);
            assert!(
                bucket_min(b) <= v && v <= bucket_max(b),
                "{v} in bucket {b}"
            );
        }
    }

    #[test]
    fn a_bucket_is_at_most_an_eighth_of_its_values_wide() {
        for bucket in PER_OCTAVE as usize..BUCKETS {
            let (low, high) = (bucket_min(bucket), bucket_max(bucket));
            assert!((high - low) <= low / 4, "bucket {bucket}: {low}..={high}");
        }
    }

    #[test]
    fn percentiles_are_within_the_bucket_error() {
        let mut h: Histogram = Histogram::new();
        for v in 1..=10_000u64 {
            h.record(v);
        }
        let stats = h.percentile_stats();
        assert_eq!(stats.samples, 10_000);
        for (estimate, exact) in [
            (stats.p1, 100.0),
            (stats.p50, 5_000.0),
            (stats.p90, 9_000.0),
            (stats.p99, 9_900.0),
        ] {
            let error = (estimate as f64 - exact).abs() / exact;
            assert!(error <= 0.125, "{estimate} for {exact}");
        }
        assert!(stats.p0_1 <= stats.p1 && stats.p1 <= stats.p5 && stats.p5 <= stats.p10);
        assert!(stats.p10 <= stats.p50 && stats.p50 <= stats.p90 && stats.p90 <= stats.p99);
    }

    #[test]
    fn small_values_are_exact_and_an_empty_histogram_says_zero() {
        let mut h: Histogram = Histogram::new();
        assert_eq!(h.percentile_stats(), PercentileStats::default());
        h.record_n(3, 99);
        h.record(0);
        assert_eq!(h.percentile(0.0), 0);
        assert_eq!(h.percentile(0.5), 3);
        assert_eq!(h.percentile(1.0), 3);
        assert_eq!(h.total(), 100);
    }

    #[test]
    fn equal_histograms_compare_equal_and_clones_are_independent() {
        let mut a: Histogram = Histogram::new();
        a.record(7);
        let mut b = a.clone();
        assert_eq!(a, b);
        b.record(7);
        assert_ne!(a, b);
        assert_eq!(a.total(), 1);
    }

    #[test]
    fn the_chart_has_a_row_per_occupied_bucket_and_a_column_per_series() {
        let mut a: Histogram = Histogram::new();
        a.record(1);
        a.record(100);
        let mut b: Histogram = Histogram::new();
        b.record(100);
        let text = AsciiChart::new()
            .add("first", a)
            .add("second", b)
            .to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].ends_with("| first | second"), "{text}");
        assert!(lines[1].trim_start().starts_with("1..=1 |"), "{text}");
        assert!(lines[2].trim_start().starts_with("96..=111 |"), "{text}");
        assert!(lines[2].ends_with("|     1 |      1"), "{text}");
    }
}
