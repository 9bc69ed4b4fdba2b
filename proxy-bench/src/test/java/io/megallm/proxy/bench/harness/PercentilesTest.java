package io.megallm.proxy.bench.harness;

import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class PercentilesTest {

    private static long[] oneTo(int n) {
        long[] a = new long[n];
        for (int i = 0; i < n; i++) {
            a[i] = i + 1;
        }
        return a;
    }

    @Test
    void nearestRankOnOneToHundred() {
        long[] a = oneTo(100);
        assertEquals(1, Percentiles.nearestRank(a, 100, 0));
        assertEquals(1, Percentiles.nearestRank(a, 100, 1));
        assertEquals(50, Percentiles.nearestRank(a, 100, 50));
        assertEquals(90, Percentiles.nearestRank(a, 100, 90));
        assertEquals(99, Percentiles.nearestRank(a, 100, 99));
        assertEquals(100, Percentiles.nearestRank(a, 100, 99.9));
        assertEquals(100, Percentiles.nearestRank(a, 100, 100));
    }

    @Test
    void nearestRankIsNotFooledByBinaryFractions() {
        // 99.9 / 100 * 1000 = 999.0000000000001 in doubles; the rank is 999, not 1000.
        long[] a = oneTo(1000);
        assertEquals(999, Percentiles.nearestRank(a, 1000, 99.9));
        assertEquals(990, Percentiles.nearestRank(a, 1000, 99));
        assertEquals(500, Percentiles.nearestRank(a, 1000, 50));
        long[] b = oneTo(10);
        assertEquals(5, Percentiles.nearestRank(b, 10, 50));
        assertEquals(10, Percentiles.nearestRank(b, 10, 99));
        assertEquals(10, Percentiles.nearestRank(b, 10, 91));
        assertEquals(9, Percentiles.nearestRank(b, 10, 90));
    }

    @Test
    void nearestRankUsesOnlyTheFirstNValues() {
        long[] a = {1, 2, 3, 4, 1000, 1000};
        assertEquals(4, Percentiles.nearestRank(a, 4, 100));
        assertEquals(2, Percentiles.nearestRank(a, 4, 50));
    }

    @Test
    void aSingleSampleIsEveryPercentile() {
        LatencySummary s = Percentiles.summarize(new long[] {2_500_000}, 1);
        assertEquals(1, s.count());
        assertEquals(2.5, s.p50Ms(), 1e-12);
        assertEquals(2.5, s.p99Ms(), 1e-12);
        assertEquals(2.5, s.p999Ms(), 1e-12);
        assertEquals(2.5, s.maxMs(), 1e-12);
        assertEquals(2.5, s.meanMs(), 1e-12);
    }

    @Test
    void summarizeSortsACopyAndConvertsToMilliseconds() {
        long[] shuffled = oneTo(1000);
        for (int i = 0; i < shuffled.length; i++) {
            shuffled[i] *= 1_000_000L; // 1..1000 ms
        }
        Random r = new Random(7);
        for (int i = shuffled.length - 1; i > 0; i--) {
            int j = r.nextInt(i + 1);
            long t = shuffled[i];
            shuffled[i] = shuffled[j];
            shuffled[j] = t;
        }
        long[] before = shuffled.clone();
        LatencySummary s = Percentiles.summarize(shuffled, shuffled.length);
        assertTrue(Arrays.equals(before, shuffled), "the caller's array is not reordered");
        assertEquals(1000, s.count());
        assertEquals(500, s.p50Ms(), 1e-9);
        assertEquals(900, s.p90Ms(), 1e-9);
        assertEquals(990, s.p99Ms(), 1e-9);
        assertEquals(999, s.p999Ms(), 1e-9);
        assertEquals(1000, s.maxMs(), 1e-9);
        assertEquals(500.5, s.meanMs(), 1e-9);
        assertEquals(990, s.at(99), 1e-9);
    }

    @Test
    void noSamplesGiveNaNNotAnError() {
        LatencySummary s = Percentiles.summarize(new long[0], 0);
        assertEquals(0, s.count());
        assertTrue(Double.isNaN(s.p99Ms()));
        assertThrows(IllegalArgumentException.class, () -> Percentiles.nearestRank(new long[0], 0, 50));
    }

    @Test
    void medianOfTrials() {
        assertEquals(2.0, Percentiles.median(new double[] {3, 1, 2}), 0);
        assertEquals(2.5, Percentiles.median(new double[] {4, 1, 3, 2}), 0);
        assertTrue(Double.isNaN(Percentiles.median(new double[0])));
    }

    @Test
    void recorderGrowsMergesAndStopsAtItsCap() {
        LatencyRecorder a = new LatencyRecorder(3000);
        for (int i = 1; i <= 2500; i++) {
            a.record(i);
        }
        assertEquals(2500, a.count());
        LatencyRecorder b = new LatencyRecorder(3000);
        b.record(-5); // a clock step backwards counts as 0, never negative
        b.addAll(a);
        assertEquals(2501, b.count());
        assertEquals(0, b.dropped());
        b.addAll(a);
        assertEquals(3000, b.count());
        assertEquals(2001, b.dropped());
        LatencySummary s = a.summary();
        assertEquals(2500 / 1e6, s.maxMs(), 1e-12);
        assertEquals(1250 / 1e6, s.p50Ms(), 1e-12);
    }
}
