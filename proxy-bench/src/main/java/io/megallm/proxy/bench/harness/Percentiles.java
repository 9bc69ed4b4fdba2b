package io.megallm.proxy.bench.harness;

import java.util.Arrays;

/** Percentile math of the reports: the nearest-rank method on the full set of samples (no buckets). */
public final class Percentiles {

    private Percentiles() {
    }

    /**
     * The nearest-rank percentile of the first {@code n} values of a sorted array: the smallest
     * value such that at least {@code p} percent of the samples are at or below it.
     */
    public static long nearestRank(long[] sorted, int n, double p) {
        if (n <= 0) {
            throw new IllegalArgumentException("no samples");
        }
        if (p <= 0) {
            return sorted[0];
        }
        if (p >= 100) {
            return sorted[n - 1];
        }
        // ceil(p/100 * n) with a guard against binary fractions (99.9/100*1000 = 999.0000000000001).
        double exact = p / 100.0 * n;
        long rank = (long) Math.ceil(exact - 1e-9);
        rank = Math.max(1, Math.min(n, rank));
        return sorted[(int) rank - 1];
    }

    /** Sorts a copy of the first {@code n} values (nanoseconds) and summarises them in milliseconds. */
    public static LatencySummary summarize(long[] nanos, int n) {
        if (n <= 0) {
            return LatencySummary.EMPTY;
        }
        long[] sorted = Arrays.copyOf(nanos, n);
        Arrays.sort(sorted);
        double sum = 0;
        for (int i = 0; i < n; i++) {
            sum += sorted[i];
        }
        return new LatencySummary(n, ms(sum / n), ms(nearestRank(sorted, n, 50)), ms(nearestRank(sorted, n, 90)),
                ms(nearestRank(sorted, n, 99)), ms(nearestRank(sorted, n, 99.9)), ms(sorted[n - 1]));
    }

    /** The median of a few numbers (trials); NaN for none. */
    public static double median(double[] values) {
        if (values.length == 0) {
            return Double.NaN;
        }
        double[] s = values.clone();
        Arrays.sort(s);
        int m = s.length / 2;
        return s.length % 2 == 1 ? s[m] : (s[m - 1] + s[m]) / 2.0;
    }

    static double ms(double nanos) {
        return nanos / 1_000_000.0;
    }
}
