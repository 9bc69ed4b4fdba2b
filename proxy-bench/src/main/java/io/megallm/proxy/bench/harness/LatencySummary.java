package io.megallm.proxy.bench.harness;

/** Percentiles of one set of latencies, in milliseconds (nearest-rank; NaN when there was no sample). */
public record LatencySummary(long count, double meanMs, double p50Ms, double p90Ms, double p99Ms, double p999Ms,
                             double maxMs) {

    public static final LatencySummary EMPTY =
            new LatencySummary(0, Double.NaN, Double.NaN, Double.NaN, Double.NaN, Double.NaN, Double.NaN);

    /** The value at a percentile this summary holds (50, 90, 99, 99.9, 100). */
    public double at(double percentile) {
        if (percentile == 50) {
            return p50Ms;
        }
        if (percentile == 90) {
            return p90Ms;
        }
        if (percentile == 99) {
            return p99Ms;
        }
        if (percentile == 99.9) {
            return p999Ms;
        }
        if (percentile == 100) {
            return maxMs;
        }
        throw new IllegalArgumentException("not kept: p" + percentile);
    }
}
