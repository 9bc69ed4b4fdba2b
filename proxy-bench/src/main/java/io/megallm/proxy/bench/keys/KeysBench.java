package io.megallm.proxy.bench.keys;

import io.megallm.proxy.bench.harness.ProcessService;
import io.megallm.proxy.bench.harness.Service;

import java.io.IOException;
import java.io.PrintStream;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.LocalDate;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * {@code bench --keys}: how much of a rate-limited key pool's capacity the proxy turns into
 * successful requests, and at what cost in wasted upstream calls, for this version and the
 * version before the key lifecycle (issue 12), at one load under the pool's capacity and one over it.
 */
public final class KeysBench {

    static final String USAGE = """
            usage: bench --keys [--minutes N] [--old-jar PATH] [--proxy-jar PATH] [--out DIR] [--loads 0.6,1.5]
                           [--keep-work] [--set NAME=VALUE]…
              --minutes N     length of each run (one per version and load; decimals allowed; default 1)
              --old-jar PATH  a megallm-proxy.jar from before issue 12, compared in the same run
              --proxy-jar     this version's jar (default proxy-server/target/megallm-proxy.jar)
              --out DIR       report directory (default proxy-bench/results/<yyyy-MM-dd>-keys)
              --loads a,b     offered loads as fractions of the pool's full capacity (default 0.6,1.5)
              --keep-work     keep the temp directory with each proxy's app.log and access.log
              --set N=V       a proxy setting instead of the scenario's (e.g. --set KEY_WAIT=0), for every version
            """;

    /** The settings of §3 the scenario is about, short enough that a one-minute run sees healing. */
    static final Map<String, String> SETTINGS = Map.of("KEY_RECHECK", "5", "KEY_COOLDOWN", "60", "KEY_WAIT", "10",
            "MAX_KEY_RETRIES", "3");

    static final String BODY = "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

    /** What one invocation runs. */
    record Plan(long runNanos, List<Double> loads, List<ProxyLauncher> versions, Path out, String command,
                boolean keepWork, Map<String, String> settings) {
    }

    private KeysBench() {
    }

    /** Parses the options after {@code --keys}, runs, writes the report; the exit code. */
    public static int command(String[] args, Path defaultProxyJar) throws Exception {
        double minutes = 1;
        Path oldJar = null;
        Path jar = defaultProxyJar;
        Path out = null;
        List<Double> loads = List.of(0.6, 1.5);
        boolean keepWork = false;
        Map<String, String> settings = new TreeMap<>(SETTINGS);
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("--keep-work")) {
                keepWork = true;
                continue;
            }
            if (i + 1 >= args.length && !a.equals("-h") && !a.equals("--help")) {
                System.err.print(a + " needs a value\n" + USAGE);
                return 2;
            }
            switch (a) {
                case "--minutes" -> minutes = Double.parseDouble(args[++i]);
                case "--old-jar" -> oldJar = Path.of(args[++i]);
                case "--proxy-jar" -> jar = Path.of(args[++i]);
                case "--out" -> out = Path.of(args[++i]);
                case "--loads" -> loads = Stream.of(args[++i].split(",")).map(Double::parseDouble).toList();
                case "--set" -> {
                    String kv = args[++i];
                    int eq = kv.indexOf('=');
                    if (eq <= 0) {
                        System.err.print("--set needs NAME=VALUE\n" + USAGE);
                        return 2;
                    }
                    settings.put(kv.substring(0, eq), kv.substring(eq + 1));
                }
                default -> {
                    System.err.print((a.startsWith("-h") || a.equals("--help") ? "" : "unknown option: " + a + "\n")
                            + USAGE);
                    return 2;
                }
            }
        }
        if (!(minutes > 0 && minutes <= 30)) {
            System.err.println("--minutes must be in (0, 30]");
            return 2;
        }
        List<ProxyLauncher> versions = new ArrayList<>();
        for (Path p : oldJar == null ? List.of(jar) : List.of(jar, oldJar)) {
            if (!Files.isRegularFile(p)) {
                System.err.println("proxy jar not found: " + p);
                return 2;
            }
        }
        versions.add(ProxyLauncher.jar("current", jar));
        if (oldJar != null) {
            versions.add(ProxyLauncher.jar("before issue 12", oldJar));
        }
        if (out == null) {
            Path base = Files.isDirectory(Path.of("proxy-bench")) ? Path.of("proxy-bench", "results") : Path.of("results");
            out = base.resolve(LocalDate.now() + "-keys");
        }
        String command = "java -jar proxy-bench/target/megallm-proxy-bench.jar bench --keys " + String.join(" ", args);
        run(new Plan((long) (minutes * 60e9), loads, versions, out, command.trim(), keepWork,
                Map.copyOf(settings)),
                System.out);
        return 0;
    }

    /** Every load against every version, one fresh mock and proxy per run; writes the report. */
    public static List<PoolRun> run(Plan plan, PrintStream log) throws Exception {
        PoolScenario scenario = PoolScenario.standard(plan.runNanos());
        Path work = Files.createTempDirectory("keys-bench");
        List<PoolRun> runs = new ArrayList<>();
        try {
            for (double load : plan.loads()) {
                for (ProxyLauncher v : plan.versions()) {
                    log.printf(Locale.ROOT, "keys bench: %s at %.0f %% of capacity (%.0f req/s) for %.0f s%n",
                            v.version(), load * 100, load * scenario.maxCapacity(), plan.runNanos() / 1e9);
                    Path runDir = work.resolve(v.version().replaceAll("[^A-Za-z0-9]+", "-") + "-" + Math.round(load * 100));
                    PoolRun r = once(scenario, plan.settings(), v, load, runDir);
                    log.printf(Locale.ROOT, "  goodput %.1f req/s = %.1f %% of capacity, %.3f wasted calls per "
                                    + "success, errors %s, recovery %s s%n", r.goodputRps(), r.goodputOfCapacity() * 100,
                            r.wastedPerSuccess(), r.clientErrors(), r.recoverySeconds());
                    runs.add(r);
                }
            }
            KeysReport.write(plan, scenario, runs);
            log.println("keys bench: report in " + plan.out().toAbsolutePath().normalize());
        } finally {
            if (plan.keepWork()) {
                log.println("keys bench: proxy logs kept in " + work);
            } else {
                deleteTree(work);
            }
        }
        return runs;
    }

    private static PoolRun once(PoolScenario scenario, Map<String, String> settings, ProxyLauncher version, double load,
                                Path work) throws Exception {
        Files.createDirectories(work);
        Path keys = work.resolve("keys.txt");
        Files.writeString(keys, String.join("\n", scenario.keys().stream().map(PoolScenario.PoolKey::secret).toList())
                + "\n");
        try (RateLimitedUpstream mock = new RateLimitedUpstream(scenario).start()) {
            int port = ProcessService.freePort();
            Map<String, String> env = new HashMap<>(settings);
            env.put("MEGALLM_BASE_URL", "http://127.0.0.1:" + mock.port() + "/v1");
            env.put("HOST", "127.0.0.1");
            env.put("PORT", Integer.toString(port));
            env.put("KEYS_FILE", keys.toString());
            env.put("KEY_STATE_FILE", work.resolve("key-state.json").toString());
            env.put("LOG_DIR", work.resolve("logs").toString());
            env.put("LOG_LEVEL", "INFO");
            env.put("ACCESS_LOG_CONSOLE", "false");
            env.put("SHUTDOWN_GRACE", "1");
            env.put("MEGALLM_TIMEOUT", "30");
            double rps = load * scenario.maxCapacity();
            try (Service proxy = version.start(env, port, work)) {
                long start = System.nanoTime() + 200_000_000L;
                mock.begin(start);
                // A request may wait KEY_WAIT (10 s) for a key, then be sent: 25 s is an answer that never came.
                OpenLoopClient.Outcome o = OpenLoopClient.run(URI.create("http://127.0.0.1:" + proxy.port()
                                + "/v1/chat/completions"), BODY, rps, start, scenario.durationNanos(),
                        Duration.ofSeconds(25), 30_000_000_000L);
                return PoolRun.of(version.version(), load, rps, scenario,
                        java.util.concurrent.TimeUnit.SECONDS.toNanos(Long.parseLong(settings.getOrDefault("KEY_RECHECK", "300"))),
                        o, mock.tallies());
            }
        }
    }

    private static void deleteTree(Path dir) {
        try (Stream<Path> s = Files.walk(dir)) {
            s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException e) {
            // a temp directory left behind is harmless
        }
    }
}
