package io.megallm.proxy.bench.keys;

import io.megallm.proxy.bench.harness.Charts;
import io.megallm.proxy.bench.harness.Json;
import io.megallm.proxy.bench.keys.PoolScenario.Role;
import io.megallm.proxy.bench.keys.RateLimitedUpstream.KeyTally;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Collectors;

/** REPORT.md, results.json and goodput.png of a keys bench run. */
final class KeysReport {

    static final String REPORT = "REPORT.md";
    static final String JSON = "results.json";
    static final String CHART = "goodput.png";

    /** The targets, stated in the report next to each figure. */
    static final double TARGET_GOODPUT = 0.95;
    static final double TARGET_WASTE = 0.05;
    static final double TARGET_RECOVERY_S = 2;

    private KeysReport() {
    }

    static void write(KeysBench.Plan plan, PoolScenario s, List<PoolRun> runs) throws IOException {
        Files.createDirectories(plan.out());
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("date", ZonedDateTime.now().format(DateTimeFormatter.ISO_OFFSET_DATE_TIME));
        json.put("command", plan.command());
        json.put("versions", plan.versions().stream().collect(Collectors.toMap(ProxyLauncher::version,
                ProxyLauncher::describe, (a, b) -> a, LinkedHashMap::new)));
        json.put("settings", new TreeMap<>(plan.settings()));
        json.put("instances", plan.instances());
        json.put("scenario", scenario(s));
        json.put("runs", runs);
        Files.writeString(plan.out().resolve(JSON), Json.write(json), StandardCharsets.UTF_8);
        chart(s, runs, plan.out().resolve(CHART));
        Files.writeString(plan.out().resolve(REPORT), markdown(plan, s, runs), StandardCharsets.UTF_8);
    }

    private static Map<String, Object> scenario(PoolScenario s) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("run_seconds", s.durationNanos() / 1e9);
        m.put("rate_per_key", s.ratePerKey());
        m.put("bucket_size", s.bucketSize());
        m.put("healthy_keys", s.count(Role.HEALTHY));
        m.put("flapping_keys", s.count(Role.FLAPPING));
        m.put("dead_keys", s.count(Role.DEAD));
        m.put("max_capacity_rps", s.maxCapacity());
        m.put("burst_seconds", List.of(s.burstStartNanos() / 1e9, s.burstEndNanos() / 1e9));
        List<List<Double>> flaps = new ArrayList<>();
        for (long[] w : s.flapWindows()) {
            flaps.add(List.of(w[0] / 1e9, w[1] / 1e9));
        }
        m.put("flapping_401_seconds", flaps);
        return m;
    }

    private static void chart(PoolScenario s, List<PoolRun> runs, Path file) {
        List<Charts.LinePanel> panels = new ArrayList<>();
        for (double load : runs.stream().map(PoolRun::loadFraction).distinct().toList()) {
            Map<String, List<Double>> lines = new LinkedHashMap<>();
            List<PoolRun> atLoad = runs.stream().filter(r -> r.loadFraction() == load).toList();
            lines.put("pool capacity", atLoad.get(0).capacityPerSecond());
            lines.put("offered", atLoad.get(0).capacityPerSecond().stream().map(x -> atLoad.get(0).offeredRps()).toList());
            for (PoolRun r : atLoad) {
                lines.put(r.version() + " goodput", r.goodputPerSecond());
            }
            List<Double> xs = new ArrayList<>();
            for (int i = 0; i < atLoad.get(0).goodputPerSecond().size(); i++) {
                xs.add(i + 0.5);
            }
            panels.add(new Charts.LinePanel(String.format(Locale.ROOT, "Offered %.0f %% of capacity: goodput per second",
                    load * 100), "seconds (burst " + f1(s.burstStartNanos() / 1e9) + "-" + f1(s.burstEndNanos() / 1e9)
                    + " s)", "successful requests / s", xs, lines));
        }
        Charts.timeSeries(panels, file);
    }

    static String markdown(KeysBench.Plan plan, PoolScenario s, List<PoolRun> runs) {
        StringBuilder b = new StringBuilder();
        b.append("# Pool efficiency: `bench --keys`\n\n");
        b.append("Run ").append(ZonedDateTime.now().format(DateTimeFormatter.ISO_OFFSET_DATE_TIME)).append(" on ")
                .append(Runtime.getRuntime().availableProcessors()).append(" cores, with\n\n    ")
                .append(plan.command()).append("\n\n");
        for (ProxyLauncher v : plan.versions()) {
            b.append("- **").append(v.version()).append("**: `").append(v.describe()).append("`\n");
        }
        b.append("\n## Scenario\n\n");
        b.append(String.format(Locale.ROOT, """
                A mock upstream (`RateLimitedUpstream`) in the bench's JVM, the proxy as a child process, an \
                open-loop client (`java.net.http`, one request every 1/rate s whatever happened to the others).%s

                - %d keys: %d healthy, %d flapping (401 in %s s, fine otherwise), %d dead (401 always).
                - Each key has a token bucket of %.0f req/s (bucket of %.0f). Over it: 429, with \
                `Retry-After: 1` for half of each group and without it for the other half.
                - IP-wide burst: every key 429 from %s s to %s s, whatever its bucket holds.
                - Every answer comes 5-20 ms after the request.
                - **Pool capacity** = the sum of the buckets of the keys the upstream accepts at that moment: \
                %.0f req/s with the flapping keys up, %.0f while they answer 401, 0 in the burst. \
                Over the run that is %.0f requests. A bucket that filled while idle can add up to %.0f \
                requests above this once per key. A proxy that keeps §7's trial schedule can reach %.0f \
                of them: a flapping key comes back at its first trial after it is up again (at %s s).
                - Offered loads are fractions of the full %.0f req/s.
                - Settings: `%s`; the rest default (`RETRY_BUDGET` 20, `MEGALLM_MAX_RETRIES` 3). The version \
                before issue 12 ignores the settings it does not know (a 429 without `Retry-After` benches a key \
                for `KEY_COOLDOWN`, a 401 kills it until a reset).

                """, plan.instances() == 1 ? "" : "\n\n" + plan.instances() + " instances of each version, each its own "
                        + "process, working directory and state file; the client sends request i to instance i mod "
                        + plan.instances() + " (round robin, as Nginx's upstream block). A version *sharing Redis* has "
                        + "REDIS_URL set to a redis-server started for that run alone; *alone*, its instances know "
                        + "only what each learns itself.",
                s.keys().size(), s.count(Role.HEALTHY), s.count(Role.FLAPPING), windows(s),
                s.count(Role.DEAD), s.ratePerKey(), s.bucketSize(), f1(s.burstStartNanos() / 1e9),
                f1(s.burstEndNanos() / 1e9), s.maxCapacity(), s.ratePerKey() * s.count(Role.HEALTHY),
                s.requestsOver(0, s.durationNanos(), Double.NaN), s.bucketSize(),
                s.reachableOver(0, s.durationNanos(), Double.NaN, recheckNanos(plan)),
                s.flapWindows().stream().map(w -> f1(s.healedAt(w, recheckNanos(plan)) / 1e9))
                        .collect(Collectors.joining(" and ")), s.maxCapacity(),
                new TreeMap<>(plan.settings()).entrySet().stream().map(e -> e.getKey() + "=" + e.getValue())
                        .collect(Collectors.joining(" "))));
        b.append("## Results\n\n");
        b.append(String.format(Locale.ROOT, """
                Targets (issue 12): goodput ≥ %.0f %% of capacity when the offered load exceeds it, wasted \
                upstream calls ≤ %.0f %% of successes, goodput back to ≥ 90 %% of its pre-burst level within %.0f s \
                of the burst's end.

                - *goodput ÷ capacity*: successes that ended inside the run ÷ the pool capacity over the run.
                - *÷ achievable*: the same ÷ the capacity capped at the offered load (what a perfect proxy gets).
                - *÷ reachable under §7*: the same ÷ what a proxy that keeps the contract's trial schedule                 can get: a flapping key counts only from its first trial after it is up again (`KEY_RECHECK`                 after its 401, then 2×, 4× … later), capped at the offered load.
                - *wasted*: upstream calls that were not a success (401, 429) ÷ client successes.
                - *recovery*: from the burst's end until goodput is ≥ 90 %% of its pre-burst level (the 10 s \
                before the burst) in each of the next three 1 s windows. It is relative: a run already \
                far under capacity before the burst recovers to that.

                """, TARGET_GOODPUT * 100, TARGET_WASTE * 100, TARGET_RECOVERY_S));
        b.append("| version | offered | goodput | ÷ capacity | ÷ achievable | ÷ reachable under §7 | upstream calls "
                + "| wasted per success | client errors | pre-burst | recovery | latency p50 / p99 / max |\n");
        b.append("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for (PoolRun r : runs) {
            b.append(String.format(Locale.ROOT, "| %s | %.0f %% (%.0f req/s) | %.1f req/s | %s | %s | %s | %d | %s | %s | "
                            + "%.1f req/s | %s | %s / %s / %s ms |\n", r.version(), r.loadFraction() * 100, r.offeredRps(),
                    r.goodputRps(), pct(r.goodputOfCapacity()), pct(r.goodputOfAchievable()),
                    pct(r.goodputOfReachable()), r.upstreamCalls(),
                    pct(r.wastedPerSuccess()), errors(r), r.preBurstRps(),
                    Double.isNaN(r.recoverySeconds()) ? "not within the run" : f1(r.recoverySeconds()) + " s",
                    f0(r.latencyP50Ms()), f0(r.latencyP99Ms()), f0(r.latencyMaxMs())));
        }
        b.append("\nWhere the wasted upstream calls went (all keys):\n\n");
        b.append("| version | offered | 401 (dead, flapping, trials) | 429 over a bucket | 429 in the burst |\n");
        b.append("|---|---|---|---|---|\n");
        for (PoolRun r : runs) {
            b.append(String.format(Locale.ROOT, "| %s | %.0f %% | %d | %d | %d |\n", r.version(), r.loadFraction() * 100,
                    r.keys().stream().mapToLong(KeyTally::unauthorized).sum(),
                    r.keys().stream().mapToLong(KeyTally::rateLimited).sum(),
                    r.keys().stream().mapToLong(KeyTally::burstRateLimited).sum()));
        }
        b.append("\n![goodput per second](").append(CHART).append(")\n\n");
        b.append("## Against the targets\n\n");
        for (PoolRun r : runs) {
            boolean over = r.loadFraction() > 1;
            b.append(String.format(Locale.ROOT, "- %s at %.0f %%: %s; wasted %s (%s); recovery %s (%s)\n", r.version(),
                    r.loadFraction() * 100,
                    over ? "goodput " + pct(r.goodputOfCapacity()) + " of capacity ("
                            + (r.goodputOfCapacity() >= TARGET_GOODPUT ? "meets" : "misses") + " ≥ 95 %), "
                            + pct(r.goodputOfReachable()) + " of what §7's trial schedule can reach ("
                            + (r.goodputOfReachable() >= TARGET_GOODPUT ? "meets" : "misses") + " ≥ 95 %)"
                            : "goodput " + pct(r.goodputOfAchievable()) + " of achievable (the goodput target is for "
                            + "overload)",
                    pct(r.wastedPerSuccess()), r.wastedPerSuccess() <= TARGET_WASTE ? "meets ≤ 5 %" : "misses ≤ 5 %",
                    Double.isNaN(r.recoverySeconds()) ? "none" : f1(r.recoverySeconds()) + " s",
                    r.recoverySeconds() <= TARGET_RECOVERY_S ? "meets ≤ 2 s" : "misses ≤ 2 s"));
        }
        b.append("\n## What the upstream saw, per key\n\n");
        b.append("Calls, successes, 401s, 429s from the bucket, 429s in the burst; *healed at*: the seconds at which "
                + "a key that had answered 401 answered 200 again (the flapping keys are up again at "
                + s.flapWindows().stream().map(w -> f1(w[1] / 1e9) + " s").collect(Collectors.joining(" and "))
                + ").\n\n");
        b.append("| version | offered | key | Retry-After | calls | 200 | 401 | 429 | 429 burst | healed at |\n");
        b.append("|---|---|---|---|---|---|---|---|---|---|\n");
        for (PoolRun r : runs) {
            for (KeyTally k : r.keys()) {
                b.append(String.format(Locale.ROOT, "| %s | %.0f %% | %s | %s | %d | %d | %d | %d | %d | %s |\n",
                        r.version(), r.loadFraction() * 100, k.key(), k.retryAfter() ? "1 s" : "none", k.calls(), k.ok(),
                        k.unauthorized(), k.rateLimited(), k.burstRateLimited(),
                        k.healedAtSeconds().isEmpty() ? (k.role().equals("flapping") ? "never" : "")
                                : k.healedAtSeconds().stream().map(KeysReport::f1).map(x -> x + " s")
                                .collect(Collectors.joining(", "))));
            }
        }
        b.append('\n');
        return b.toString();
    }

    private static long recheckNanos(KeysBench.Plan plan) {
        return java.util.concurrent.TimeUnit.SECONDS.toNanos(Long.parseLong(plan.settings().getOrDefault("KEY_RECHECK", "300")));
    }

    private static String windows(PoolScenario s) {
        return s.flapWindows().stream().map(w -> f1(w[0] / 1e9) + "-" + f1(w[1] / 1e9))
                .collect(Collectors.joining(" and "));
    }

    private static String errors(PoolRun r) {
        if (r.clientErrors().isEmpty()) {
            return "none";
        }
        return r.clientErrors().entrySet().stream().map(e -> e.getKey() + ": " + e.getValue())
                .collect(Collectors.joining(", "));
    }

    static String pct(double v) {
        return Double.isNaN(v) ? "n/a" : String.format(Locale.ROOT, "%.1f %%", v * 100);
    }

    static String f1(double v) {
        return String.format(Locale.ROOT, "%.1f", v);
    }

    private static String f0(double v) {
        return Double.isNaN(v) ? "n/a" : String.format(Locale.ROOT, "%.0f", v);
    }
}
