package io.megallm.proxy.bench.keys;

import io.megallm.proxy.bench.harness.ProcessService;
import io.megallm.proxy.bench.harness.Service;
import io.megallm.proxy.bench.shared.RedisServer;

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
                           [--keep-work] [--set NAME=VALUE]… [--instances N [--redis]]
              --minutes N     length of each run (one per version and load; decimals allowed; default 1)
              --old-jar PATH  a megallm-proxy.jar from before issue 12, compared in the same run
              --proxy-jar     this version's jar (default proxy-server/target/megallm-proxy.jar)
              --out DIR       report directory (default proxy-bench/results/<yyyy-MM-dd>-keys)
              --loads a,b     offered loads as fractions of the pool's full capacity (default 0.6,1.5)
              --keep-work     keep the temp directory with each proxy's app.log and access.log
              --set N=V       a proxy setting instead of the scenario's (e.g. --set KEY_WAIT=0), for every version
              --instances N   N proxies of each version (default 1), the client spreading requests over them in
                              turn as Nginx's upstream block does
              --redis         with --instances: each version twice in the same run, its instances alone and
                              sharing state through a redis-server started for the run (REDIS_URL)
            """;

    /** The settings of §3 the scenario is about, short enough that a one-minute run sees healing. */
    static final Map<String, String> SETTINGS = Map.of("KEY_RECHECK", "5", "KEY_COOLDOWN", "60", "KEY_WAIT", "10",
            "MAX_KEY_RETRIES", "3");

    static final String BODY = "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

    /** What one invocation runs. */
    record Plan(long runNanos, List<Double> loads, List<ProxyLauncher> versions, Path out, String command,
                boolean keepWork, Map<String, String> settings, int instances) {

        /** One instance of each version, as before --instances. */
        Plan(long runNanos, List<Double> loads, List<ProxyLauncher> versions, Path out, String command,
             boolean keepWork, Map<String, String> settings) {
            this(runNanos, loads, versions, out, command, keepWork, settings, 1);
        }
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
        boolean redis = false;
        int instances = 1;
        Map<String, String> settings = new TreeMap<>(SETTINGS);
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("--keep-work") || a.equals("--redis")) {
                keepWork |= a.equals("--keep-work");
                redis |= a.equals("--redis");
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
                case "--instances" -> instances = Integer.parseInt(args[++i]);
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
        if (instances < 1 || instances > 8) {
            System.err.println("--instances must be 1 to 8");
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
        if (redis) {
            // Each version alone and shared, in the same run: the comparison the option is for.
            List<ProxyLauncher> both = new ArrayList<>();
            for (ProxyLauncher v : versions) {
                String n = instances > 1 ? v.version() + " ×" + instances : v.version();
                both.add(ProxyLauncher.variant(v, n + " alone", false));
                both.add(ProxyLauncher.variant(v, n + " sharing Redis", true));
            }
            versions = both;
        }
        if (out == null) {
            Path base = Files.isDirectory(Path.of("proxy-bench")) ? Path.of("proxy-bench", "results") : Path.of("results");
            out = base.resolve(LocalDate.now() + "-keys" + (instances > 1 ? "-x" + instances : "")
                    + (redis ? "-redis" : ""));
        }
        String command = "java -jar proxy-bench/target/megallm-proxy-bench.jar bench --keys " + String.join(" ", args);
        run(new Plan((long) (minutes * 60e9), loads, versions, out, command.trim(), keepWork,
                Map.copyOf(settings), instances),
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
                    PoolRun r = once(scenario, plan.settings(), v, load, runDir, plan.instances());
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
                                Path work, int instances) throws Exception {
        Files.createDirectories(work);
        Path keys = work.resolve("keys.txt");
        Files.writeString(keys, String.join("\n", scenario.keys().stream().map(PoolScenario.PoolKey::secret).toList())
                + "\n");
        List<Service> started = new ArrayList<>();
        try (RateLimitedUpstream mock = new RateLimitedUpstream(scenario).start()) {
            String redisUrl = null;
            if (version.sharesState()) {
                Service redis = RedisServer.start(work.resolve("redis"));
                started.add(redis);
                redisUrl = RedisServer.url(redis);
            }
            List<URI> uris = new ArrayList<>();
            for (int i = 0; i < instances; i++) {
                // One working directory each: its own state file and logs, as separate machines would have.
                Path dir = instances == 1 ? work : work.resolve("instance-" + (i + 1));
                Files.createDirectories(dir);
                int port = ProcessService.freePort();
                Map<String, String> env = new HashMap<>(settings);
                env.put("MEGALLM_BASE_URL", "http://127.0.0.1:" + mock.port() + "/v1");
                env.put("HOST", "127.0.0.1");
                env.put("PORT", Integer.toString(port));
                env.put("KEYS_FILE", keys.toString());
                env.put("KEY_STATE_FILE", dir.resolve("key-state.json").toString());
                env.put("LOG_DIR", dir.resolve("logs").toString());
                env.put("LOG_LEVEL", "INFO");
                env.put("ACCESS_LOG_CONSOLE", "false");
                env.put("SHUTDOWN_GRACE", "1");
                env.put("MEGALLM_TIMEOUT", "30");
                if (redisUrl != null) {
                    env.put("REDIS_URL", redisUrl);
                }
                Service proxy = version.start(env, port, dir);
                started.add(proxy);
                uris.add(URI.create("http://127.0.0.1:" + proxy.port() + "/v1/chat/completions"));
            }
            if (redisUrl != null) {
                for (URI u : uris) {
                    awaitShared(u);
                }
            }
            double rps = load * scenario.maxCapacity();
            long start = System.nanoTime() + 200_000_000L;
            mock.begin(start);
            // A request may wait KEY_WAIT (10 s) for a key, then be sent: 25 s is an answer that never came.
            OpenLoopClient.Outcome o = OpenLoopClient.run(uris, BODY, rps, start, scenario.durationNanos(),
                    Duration.ofSeconds(25), 30_000_000_000L);
            return PoolRun.of(version.version(), load, rps, scenario,
                    java.util.concurrent.TimeUnit.SECONDS.toNanos(Long.parseLong(settings.getOrDefault("KEY_RECHECK", "300"))),
                    o, mock.tallies());
        } finally {
            for (int i = started.size() - 1; i >= 0; i--) {
                started.get(i).close();
            }
        }
    }

    /** Waits (10 s at most) until the instance says it shares state, so that the run measures sharing. */
    private static void awaitShared(URI chat) throws Exception {
        java.net.http.HttpClient http = java.net.http.HttpClient.newHttpClient();
        java.net.http.HttpRequest health = java.net.http.HttpRequest.newBuilder(chat.resolve("/health")).build();
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (System.nanoTime() < deadline) {
            String body = http.send(health, java.net.http.HttpResponse.BodyHandlers.ofString()).body();
            if (body.contains("\"shared_state\":\"ok\"")) {
                return;
            }
            Thread.sleep(50);
        }
        throw new IllegalStateException("the proxy on " + chat.getPort() + " did not reach Redis within 10 s");
    }

    private static void deleteTree(Path dir) {
        try (Stream<Path> s = Files.walk(dir)) {
            s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException e) {
            // a temp directory left behind is harmless
        }
    }
}
