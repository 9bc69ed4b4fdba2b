package io.megallm.proxy.bench.keys;

import io.megallm.proxy.bench.keys.RateLimitedUpstream.KeyTally;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The figures of one run (one proxy version at one offered load), computed from the client's
 * outcomes and the mock's tallies.
 *
 * @param goodputOfCapacity    successes that ended inside the load window ÷ the requests the pool's
 *                             buckets could have accepted in it (0 in the burst, flapping keys only while up)
 * @param goodputOfAchievable  the same successes ÷ what was achievable: the capacity capped at the offered load
 * @param goodputOfReachable   the same successes ÷ the capacity a proxy keeping §7's trial schedule can reach
 *                             (a flapping key counts from its first trial after it is up again), capped at the
 *                             offered load
 * @param wastedPerSuccess     upstream calls that did not succeed ÷ client successes
 * @param recoverySeconds      from the end of the burst until goodput is ≥ 90 % of the pre-burst level
 *                             in each of the next three seconds (NaN: not within the run)
 */
public record PoolRun(String version, double loadFraction, double offeredRps, double seconds, long sent,
                      long succeeded, double goodputRps, double capacityRequests, double achievableRequests,
                      double goodputOfCapacity, double goodputOfAchievable, double reachableRequests,
                      double goodputOfReachable, long upstreamCalls, long upstreamOk,
                      long upstreamWasted, double wastedPerSuccess, Map<String, Long> clientErrors,
                      double preBurstRps, double recoverySeconds, double latencyP50Ms, double latencyP99Ms,
                      double latencyMaxMs, List<Double> goodputPerSecond, List<Double> capacityPerSecond,
                      List<KeyTally> keys) {

    static PoolRun of(String version, double loadFraction, double offeredRps, PoolScenario s, long recheckNanos,
                      OpenLoopClient.Outcome o, List<KeyTally> keys) {
        long window = s.durationNanos();
        int secondsCount = (int) Math.ceil(window / 1e9);
        double[] perSecond = new double[secondsCount];
        Map<String, Long> errors = new TreeMap<>();
        long succeeded = 0;
        List<Long> okEnds = new ArrayList<>();
        List<Double> latencies = new ArrayList<>();
        for (int i = 0; i < o.size(); i++) {
            int st = o.status()[i];
            if (st == 200) {
                long end = o.doneAt()[i];
                latencies.add((end - o.sentAt()[i]) / 1e6);
                if (end < window) {
                    succeeded++;
                    okEnds.add(end);
                    perSecond[(int) (end / 1_000_000_000L)]++;
                }
            } else {
                errors.merge(OpenLoopClient.label(st), 1L, Long::sum);
            }
        }
        double capacity = s.requestsOver(0, window, Double.NaN);
        double achievable = s.requestsOver(0, window, offeredRps);
        double reachable = s.reachableOver(0, window, offeredRps, recheckNanos);
        long calls = keys.stream().mapToLong(KeyTally::calls).sum();
        long ok = keys.stream().mapToLong(KeyTally::ok).sum();
        long allSucceeded = latencies.size();
        long wasted = calls - ok;
        List<Double> cap = new ArrayList<>();
        for (int i = 0; i < secondsCount; i++) {
            cap.add(s.requestsOver(i * 1_000_000_000L, Math.min(window, (i + 1) * 1_000_000_000L), Double.NaN));
        }
        // The level to come back to: the goodput of the stretch before the burst in which the flapping
        // keys are up (after the first flap window), at most 10 s long.
        long preTo = s.burstStartNanos();
        long preFrom = Math.max(s.flapWindows().get(0)[1], preTo - 10_000_000_000L);
        double pre = countIn(okEnds, preFrom, preTo) / Math.max(1e-9, (preTo - preFrom) / 1e9);
        // Back means back for good: three 1 s windows in a row at the level, so that the flush of the
        // requests that waited through the burst does not pass for a recovery.
        double recovery = Double.NaN;
        long sec = 1_000_000_000L;
        for (long t = s.burstEndNanos(); t + 3 * sec <= window; t += 100_000_000L) {
            if (countIn(okEnds, t, t + sec) >= 0.9 * pre && countIn(okEnds, t + sec, t + 2 * sec) >= 0.9 * pre
                    && countIn(okEnds, t + 2 * sec, t + 3 * sec) >= 0.9 * pre) {
                recovery = (t - s.burstEndNanos()) / 1e9;
                break;
            }
        }
        double[] lat = latencies.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        return new PoolRun(version, loadFraction, offeredRps, window / 1e9, o.size(), succeeded,
                succeeded / (window / 1e9), capacity, achievable, succeeded / capacity, succeeded / achievable,
                reachable, succeeded / reachable,
                calls, ok, wasted, allSucceeded == 0 ? Double.NaN : (double) wasted / allSucceeded, errors, pre,
                recovery, quantile(lat, 0.50), quantile(lat, 0.99), lat.length == 0 ? Double.NaN : lat[lat.length - 1],
                Arrays.stream(perSecond).boxed().toList(), cap, keys);
    }

    private static long countIn(List<Long> ends, long from, long to) {
        return ends.stream().filter(e -> e >= from && e < to).count();
    }

    private static double quantile(double[] sorted, double q) {
        if (sorted.length == 0) {
            return Double.NaN;
        }
        return sorted[Math.min(sorted.length - 1, (int) Math.floor(q * sorted.length))];
    }

    public long errorCount() {
        return clientErrors.values().stream().mapToLong(Long::longValue).sum();
    }
}
