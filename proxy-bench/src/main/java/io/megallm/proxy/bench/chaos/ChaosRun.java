package io.megallm.proxy.bench.chaos;

import io.megallm.proxy.bench.chaos.ChaosClients.BadAnswer;
import io.megallm.proxy.bench.chaos.ChaosClients.Left;
import io.megallm.proxy.bench.chaos.ChaosResults.Check;
import io.megallm.proxy.bench.chaos.ChaosResults.PatternRow;
import io.megallm.proxy.bench.chaos.ChaosResults.Resources;
import io.megallm.proxy.bench.chaos.ChaosResults.Sample;
import io.megallm.proxy.bench.harness.Harness;
import io.megallm.proxy.bench.harness.Peers;
import io.megallm.proxy.bench.harness.ProcessService;
import io.megallm.proxy.bench.harness.Procfs;
import io.megallm.proxy.bench.harness.Tools;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.time.LocalDate;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * {@code bench --chaos}: the real proxy jar as a child process, between {@link ChaosClients} (well
 * behaved and hostile, at once) and a {@link ChaosUpstream} that misbehaves, for a fixed time; then
 * it checks that every well-behaved request got a right answer, that memory stayed flat, and that
 * descriptors, upstream connections and permits came back. Every phase has a time limit.
 */
public final class ChaosRun {

    /** The proxy's timeouts for the run: small, so that a cut (or its absence) shows within seconds. */
    static final int CLIENT_HEADER_TIMEOUT = 2;
    static final int CLIENT_BODY_TIMEOUT = 2;
    static final int KEEPALIVE_TIMEOUT = 5;
    static final int SEND_TIMEOUT = 2;
    static final int MEGALLM_TIMEOUT = 3;
    static final int POOL_MAX = 512;
    static final int POOL_IDLE = 32;
    /** Timer granularity and a loaded 2-core box: a cut counts as on time up to this late. */
    static final double CUT_SLACK_SECONDS = 3;
    /** A stalled reader is only noticed once the proxy's buffers toward it are full (~1 s here). */
    static final double STALL_FILL_SECONDS = 4;
    /** Contract §12: every upstream stream is closed within 2 s of its client leaving. */
    static final double UPSTREAM_CLOSE_SECONDS = 2;
    /** A request already on its way when its client left may arrive a little later; beyond this it was sent late. */
    static final long SENT_AFTER_GRACE_NANOS = TimeUnit.MILLISECONDS.toNanos(100);
    /** RSS growth that fails the run: a slope and a total rise over the second half, both exceeded. */
    static final double RSS_SLOPE_MB_PER_MIN = 2;
    static final double RSS_RISE_MB = 16;
    static final double HEAP_GROWTH_MB = 32;
    /** Descriptors the JVM may open lazily during a run (log rolls, jars, /proc reads). */
    static final int FD_SLACK = 10;

    /** Settings of one run. */
    public record Settings(double minutes, double scale, int maxOpen, int holdSeconds, double warmupSeconds,
                           Path outDir, Path proxyJar, List<String> jvmOptions, String leakLevel, int probeSize,
                           double faultRate, int refuseEverySeconds) {

        public static Settings defaults(Path outDir, Path jar) {
            return new Settings(2, 1.0, 2000, 20, 5, outDir, jar, List.of(), "paranoid", POOL_MAX, 0.06, 20);
        }

        /** A few seconds, few clients: for the smoke test. */
        public static Settings smoke(Path outDir, Path jar) {
            return new Settings(0.15, 0.1, 200, 4, 2, outDir, jar, List.of(), "paranoid", 32, 0.06, 4);
        }

        public Settings withMinutes(double m) {
            return new Settings(m, scale, maxOpen, holdSeconds, warmupSeconds, outDir, proxyJar, jvmOptions, leakLevel,
                    probeSize, faultRate, refuseEverySeconds);
        }

        public Settings withJvmOptions(List<String> opts) {
            return new Settings(minutes, scale, maxOpen, holdSeconds, warmupSeconds, outDir, proxyJar, opts, leakLevel,
                    probeSize, faultRate, refuseEverySeconds);
        }

        public Settings withScale(double s) {
            return new Settings(minutes, s, maxOpen, holdSeconds, warmupSeconds, outDir, proxyJar, jvmOptions,
                    leakLevel, probeSize, faultRate, refuseEverySeconds);
        }

        public Settings withLeakLevel(String level) {
            return new Settings(minutes, scale, maxOpen, holdSeconds, warmupSeconds, outDir, proxyJar, jvmOptions,
                    level, probeSize, faultRate, refuseEverySeconds);
        }
    }

    private final Settings cfg;
    private final PrintStream log;
    private final List<Sample> samples = new ArrayList<>();
    private final List<String> notes = new ArrayList<>();
    private long loadStart;

    public ChaosRun(Settings cfg, PrintStream log) {
        this.cfg = cfg;
        this.log = log;
    }

    private void say(String s) {
        log.println("[chaos " + Instant.now().toString().substring(11, 19) + "] " + s);
        log.flush();
    }

    public ChaosResults run() throws Exception {
        String startedAt = Instant.now().toString();
        Path work = Files.createTempDirectory("megallm-chaos");
        ChaosUpstream upstream = new ChaosUpstream(cfg.faultRate(), (MEGALLM_TIMEOUT + 2) * 1000L).start();
        ProcessService proxy = null;
        ChaosClients clients = null;
        Thread refuser = null;
        try {
            Path proxyDir = work.resolve("proxy");
            Files.createDirectories(proxyDir);
            Path keys = proxyDir.resolve("keys.txt");
            Files.writeString(keys, String.join("\n", keys()) + "\n");
            int port = ProcessService.freePort();
            Map<String, String> env = new TreeMap<>(Peers.proxyEnv(upstream.port(), port, keys,
                    proxyDir.resolve("logs")));
            env.putAll(proxySettings());
            List<String> cmd = new ArrayList<>();
            cmd.add(Tools.java());
            // A fixed, pre-touched heap: RSS then moves only with what lives outside the heap (direct
            // buffers, threads, metaspace), so its slope means something within minutes.
            cmd.addAll(List.of("-Xms256m", "-Xmx256m", "-XX:+AlwaysPreTouch",
                    "-Dio.netty.leakDetection.level=" + cfg.leakLevel()));
            cmd.addAll(cfg.jvmOptions());
            cmd.addAll(List.of("-jar", cfg.proxyJar().toAbsolutePath().toString()));
            say("proxy: " + String.join(" ", cmd));
            proxy = ProcessService.start("proxy", cmd, env, proxyDir, port, 60_000);
            long pid = proxy.pid();
            clients = new ChaosClients(new ChaosClients.Settings(port, cfg.scale(), cfg.maxOpen(),
                    cfg.holdSeconds() * 1000L, 45_000, CLIENT_BODY_TIMEOUT * 1000L, cutDue()));

            say("warm-up: well-behaved traffic only, " + cfg.warmupSeconds() + " s");
            loadStart = System.nanoTime() + (long) (cfg.warmupSeconds() * 1e9);
            runFor(clients, upstream, pid, port, cfg.warmupSeconds(), true);
            waitQuiet(clients, upstream, 20);
            Resources baseline = resources(pid, port, upstream, true);
            say("baseline: " + baseline);

            long loadNanos = (long) (cfg.minutes() * 60e9);
            loadStart = System.nanoTime();
            ChaosUpstream up = upstream;
            refuser = new Thread(() -> refuseNowAndThen(up, loadNanos), "chaos-refuser");
            refuser.setDaemon(true);
            refuser.start();
            say("load: every pattern for " + cfg.minutes() + " min, at most " + cfg.maxOpen() + " client connections");
            runFor(clients, upstream, pid, port, loadNanos / 1e9, false);
            double loadSeconds = (System.nanoTime() - loadStart) / 1e9;
            refuser.interrupt();
            refuser.join(10_000);
            synchronized (notes) {
                notes.add("the mock refused connections in " + upstream.refusalWindows() + " windows of 0.3-0.8 s "
                        + "during the load (the 'upstream refused connections' excuse applies to requests in flight then)");
            }

            say("drain: clients stop; waiting for the proxy and the mock to settle");
            clients.stopLaunching();
            long drainEnd = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (System.nanoTime() < drainEnd && (clients.snapshot().sessions() > 0
                    || upstream.exchangesInProgress() > 0)) {
                sample(clients, upstream, pid, port);
                Thread.sleep(1000);
            }
            // Past the 2 s window of every client that left, and past KEEPALIVE_TIMEOUT.
            for (int i = 0; i < 4; i++) {
                sample(clients, upstream, pid, port);
                Thread.sleep(1000);
            }
            ChaosClients.Snapshot snap = clients.snapshot();
            Resources after = resources(pid, port, upstream, true);
            say("after: " + after);

            Map<String, Long> probe = permitProbe(clients, cfg.probeSize());
            say("permit probe (" + cfg.probeSize() + " streams at once): " + probe);
            Resources end = resources(pid, port, upstream, true);
            // The leak detector reports when it next tracks a buffer after the GC: a few more requests.
            runFor(clients, upstream, pid, port, 2, true);
            Thread.sleep(2000);
            String leaks = leakReports(proxyDir);
            boolean alive = proxy.alive();
            String oom = grep(proxyDir, "OutOfMemoryError");

            List<Check> checks = checks(snap, upstream, baseline, after, end, probe, leaks, alive, oom);
            ChaosResults r = new ChaosResults(LocalDate.now().toString(), startedAt, loadSeconds,
                    String.join(" ", cmd), new TreeMap<>(proxySettings()), runSettings(), patternRows(snap),
                    judge(snap, upstream), upstream.answersByKind(), baseline, after, List.copyOf(samples), checks,
                    notes);
            ChaosReport.write(r, cfg.outDir());
            say("report: " + cfg.outDir().resolve(ChaosReport.REPORT));
            for (Check c : checks) {
                say((c.passed() == null ? "n/a " : c.passed() ? "PASS" : "FAIL") + " " + c.name() + ": " + c.measured());
            }
            return r;
        } finally {
            if (refuser != null) {
                refuser.interrupt();
            }
            if (clients != null) {
                clients.close();
            }
            if (proxy != null) {
                proxy.close();
            }
            upstream.stop();
            deleteTree(work);
        }
    }

    /** When each holding pattern's cut is due at the latest (its timeout plus slack), in ms. */
    static Map<ChaosPattern, Long> cutDue() {
        Map<ChaosPattern, Long> m = new java.util.EnumMap<>(ChaosPattern.class);
        m.put(ChaosPattern.SLOW_HEAD, (long) ((CLIENT_HEADER_TIMEOUT + CUT_SLACK_SECONDS) * 1000));
        m.put(ChaosPattern.SLOW_BODY, (long) ((CLIENT_BODY_TIMEOUT + CUT_SLACK_SECONDS) * 1000));
        m.put(ChaosPattern.IDLE_KEEPALIVE, (long) ((KEEPALIVE_TIMEOUT + CUT_SLACK_SECONDS) * 1000));
        m.put(ChaosPattern.STALLED_READER, (long) ((SEND_TIMEOUT + STALL_FILL_SECONDS + CUT_SLACK_SECONDS) * 1000));
        return m;
    }

    /** The key file: healthy keys, and keys the mock treats as dead, banned or rate-limited. */
    static List<String> keys() {
        List<String> k = new ArrayList<>();
        for (int i = 1; i <= 6; i++) {
            k.add("sk-chaos-good-000" + i + "-aaaaaaaaaaaaaaaaaaaaaaaa");
        }
        k.add("sk-chaos-dead-0001-bbbbbbbbbbbbbbbbbbbbbbbb");
        k.add("sk-chaos-dead-0002-bbbbbbbbbbbbbbbbbbbbbbbb");
        k.add("sk-chaos-banned-0001-cccccccccccccccccccccc");
        k.add("sk-chaos-limited-0001-dddddddddddddddddddddd");
        k.add("sk-chaos-limited-0002-dddddddddddddddddddddd");
        return k;
    }

    /** The contract §3 settings of the run (the proxy ignores the ones it does not know yet). */
    static Map<String, String> proxySettings() {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("CLIENT_HEADER_TIMEOUT", Integer.toString(CLIENT_HEADER_TIMEOUT));
        m.put("CLIENT_BODY_TIMEOUT", Integer.toString(CLIENT_BODY_TIMEOUT));
        m.put("KEEPALIVE_TIMEOUT", Integer.toString(KEEPALIVE_TIMEOUT));
        m.put("SEND_TIMEOUT", Integer.toString(SEND_TIMEOUT));
        m.put("MEGALLM_TIMEOUT", Integer.toString(MEGALLM_TIMEOUT));
        // Below the descriptor limit with room for the upstream side: a flood meets the cap, not EMFILE.
        long fdLimit = Procfs.maxOpenFilesHard();
        m.put("MAX_CONNECTIONS", Long.toString(fdLimit > 0 ? Math.min(4000, fdLimit / 2) : 4000));
        m.put("HTTP_POOL_MAXSIZE", Integer.toString(POOL_MAX));
        m.put("HTTP_POOL_CONNECTIONS", Integer.toString(POOL_IDLE));
        m.put("KEY_COOLDOWN", "5");
        m.put("ACCESS_LOG_CONSOLE", "false");
        return m;
    }

    private Map<String, Object> runSettings() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("minutes", cfg.minutes());
        m.put("scale", cfg.scale());
        m.put("max_open_client_connections", cfg.maxOpen());
        m.put("hold_seconds", cfg.holdSeconds());
        m.put("warmup_seconds", cfg.warmupSeconds());
        m.put("upstream_fault_rate", cfg.faultRate());
        m.put("upstream_refuses_every_seconds", cfg.refuseEverySeconds());
        m.put("netty_leak_detection", cfg.leakLevel());
        m.put("permit_probe_streams", cfg.probeSize());
        m.put("keys", "6 healthy, 2 dead (401), 1 banned (403), 2 rate-limited (429, Retry-After 2)");
        return m;
    }

    // ---- phases ----------------------------------------------------------------------------

    private void runFor(ChaosClients clients, ChaosUpstream upstream, long pid, int port, double seconds,
                        boolean wellBehavedOnly) throws Exception {
        long end = System.nanoTime() + (long) (seconds * 1e9);
        long nextSample = 0;
        long last = System.nanoTime();
        while (System.nanoTime() < end) {
            Thread.sleep(100);
            long now = System.nanoTime();
            clients.tick((now - last) / 1e9, wellBehavedOnly);
            last = now;
            if (now >= nextSample) {
                sample(clients, upstream, pid, port);
                nextSample = now + TimeUnit.SECONDS.toNanos(2);
            }
        }
    }

    private void waitQuiet(ChaosClients clients, ChaosUpstream upstream, int maxSeconds) throws Exception {
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(maxSeconds);
        while (System.nanoTime() < end && (clients.snapshot().sessions() > 0 || upstream.exchangesInProgress() > 0)) {
            Thread.sleep(200);
        }
        Thread.sleep(1000);
    }

    /** Every {@code refuseEverySeconds}, the mock refuses connections for 300-800 ms. */
    private void refuseNowAndThen(ChaosUpstream upstream, long loadNanos) {
        long end = System.nanoTime() + loadNanos;
        try {
            while (System.nanoTime() < end) {
                Thread.sleep(cfg.refuseEverySeconds() * 1000L);
                if (System.nanoTime() >= end) {
                    return;
                }
                upstream.refuseFor(300 + java.util.concurrent.ThreadLocalRandom.current().nextLong(500));
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (RuntimeException e) {
            synchronized (notes) {
                notes.add("the mock stopped refusing connections: " + e.getMessage());
            }
        }
    }

    private void sample(ChaosClients clients, ChaosUpstream upstream, long pid, int port) throws Exception {
        Map<String, Double> g = ProxyGauges.read(port);
        long kb = Procfs.rssKb(pid);
        samples.add(new Sample((System.nanoTime() - loadStart) / 1e9, kb < 0 ? Double.NaN : kb / 1024.0, fds(pid),
                g.getOrDefault(ProxyGauges.HEAP_BYTES, Double.NaN) / (1024 * 1024),
                clients.snapshot().open(), upstream.openConnections(), upstream.exchangesInProgress(),
                g.getOrDefault("megallm_active_connections", Double.NaN),
                g.getOrDefault("megallm_upstream_connections", Double.NaN)));
    }

    private Resources resources(long pid, int port, ChaosUpstream upstream, boolean gc) {
        double heap = gc ? heapAfterGcMb(pid) : Double.NaN;
        long kb = Procfs.rssKb(pid);
        return new Resources(kb < 0 ? Double.NaN : kb / 1024.0, fds(pid), heap, upstream.openConnections(),
                upstream.exchangesInProgress(), upstream.activeStreams(), ProxyGauges.read(port));
    }

    static long fds(long pid) {
        try (Stream<Path> s = Files.list(Path.of("/proc/" + pid + "/fd"))) {
            return s.count();
        } catch (IOException | RuntimeException e) {
            return -1;
        }
    }

    private static double heapAfterGcMb(long pid) {
        Tools.run(List.of(Tools.jdkTool("jcmd"), Long.toString(pid), "GC.run"), 30);
        return Harness.parseJstatUsedMb(Tools.run(List.of(Tools.jdkTool("jstat"), "-gc", Long.toString(pid)), 30)
                .output());
    }

    /**
     * {@code n} streams at once, each holding an upstream connection for 8 s with an event every
     * 500 ms (never silent long enough to time out). With every permit back, all get their head at
     * once; a lost permit makes one wait MEGALLM_TIMEOUT and get 503 instead.
     */
    private Map<String, Long> permitProbe(ChaosClients clients, int n) throws Exception {
        return clients.probe(n, 5000).get(30, TimeUnit.SECONDS);
    }

    private String leakReports(Path proxyDir) {
        return grep(proxyDir, "LEAK:");
    }

    /** Lines of the proxy's console and logs that contain {@code needle} (first few), "" when none. */
    private static String grep(Path proxyDir, String needle) {
        StringBuilder b = new StringBuilder();
        int[] count = {0};
        try (Stream<Path> files = Files.walk(proxyDir)) {
            for (Path f : files.filter(Files::isRegularFile)
                    .filter(p -> p.toString().endsWith(".out") || p.toString().endsWith(".log")).toList()) {
                if (f.getFileName().toString().startsWith("access")) {
                    continue;
                }
                try (Stream<String> lines = Files.lines(f, StandardCharsets.UTF_8)) {
                    lines.filter(l -> l.contains(needle)).forEach(l -> {
                        if (count[0]++ < 5) {
                            b.append(f.getFileName()).append(": ").append(l, 0, Math.min(l.length(), 300)).append('\n');
                        }
                    });
                } catch (IOException | java.io.UncheckedIOException e) {
                    // unreadable (binary or rolled away): skipped
                }
            }
        } catch (IOException e) {
            return "";
        }
        if (count[0] > 5) {
            b.append("... ").append(count[0]).append(" lines in all\n");
        }
        return b.toString();
    }

    // ---- judging ---------------------------------------------------------------------------

    /**
     * The rule for a checked request: right (200 with the whole expected body or every event and
     * {@code data: [DONE]}), or excused, or failed. Excused only when the mock misbehaved on that
     * request (a random fault or a key-based 401/403/429 recorded under its X-Request-Id, or a
     * refusal window while it was in flight)
     * AND the answer has a form the contract allows for it: an error status (>= 400) with the
     * OpenAI error shape (§7 relays the last upstream answer or 502/504; §9), or, after a drop in
     * the middle of the upstream answer, a head followed by a close without a clean end (§8).
     * A 200 with a wrong body, a close without any answer, or a timeout is never excused.
     */
    private ChaosResults.Wellbehaved judge(ChaosClients.Snapshot snap, ChaosUpstream upstream) {
        Map<String, Long> excusedBy = new TreeMap<>();
        Map<String, Long> failedBy = new TreeMap<>();
        List<String> examples = new ArrayList<>();
        for (BadAnswer b : snap.bad()) {
            String why = excuse(b, upstream);
            String kind = b.pattern().name().toLowerCase() + ":" + b.kind();
            if (why != null) {
                excusedBy.merge(kind + " (" + why + ")", 1L, Long::sum);
            } else {
                failedBy.merge(kind, 1L, Long::sum);
                if (examples.size() < 20) {
                    examples.add(b.requestId() + " " + b.kind() + " after "
                            + String.format(Locale.ROOT, "%.2f s", (b.endNanos() - b.sentNanos()) / 1e9)
                            + (b.snippet().isEmpty() ? "" : ": " + b.snippet().replace('\n', ' ')
                            .substring(0, Math.min(160, b.snippet().length()))));
                }
            }
        }
        explainNoKey(snap, upstream);
        long excused = excusedBy.values().stream().mapToLong(Long::longValue).sum();
        long failed = failedBy.values().stream().mapToLong(Long::longValue).sum();
        return new ChaosResults.Wellbehaved(snap.checkedSent(), snap.checkedOk(), excused, failed, excusedBy, failedBy,
                examples);
    }

    private boolean explained;

    /**
     * A "no key available" 503 on a request the mock did not touch: say how many healthy keys the
     * mock had just rate-limited (Retry-After: 1) at that moment. Contract §7 (KEY_WAIT) has such
     * a request wait for the first resting key instead; the answer stays counted as wrong.
     */
    private void explainNoKey(ChaosClients.Snapshot snap, ChaosUpstream upstream) {
        if (explained) {
            return;
        }
        explained = true;
        List<Integer> resting = new ArrayList<>();
        for (BadAnswer b : snap.bad()) {
            if (b.status() == 503 && b.snippet().contains("no_available_keys") && excuse(b, upstream) == null) {
                resting.add(upstream.healthyKeysAnswered429(b.sentNanos() - TimeUnit.SECONDS.toNanos(2), b.endNanos()));
            }
        }
        if (!resting.isEmpty()) {
            resting.sort(null);
            notes.add(resting.size() + " well-behaved requests the mock never touched got 503 `no_available_keys`; "
                    + "in the 2 s before each, the mock had answered a random 429 (Retry-After: 1) to a median of "
                    + resting.get(resting.size() / 2) + " (min " + resting.get(0) + ", max "
                    + resting.get(resting.size() - 1) + ") of the 6 healthy keys, while the 2 limited keys rest "
                    + "most of the time. Contract §7 (KEY_WAIT, default 10 s) has such a request wait for the "
                    + "first resting key; the proxy under test answers 503 at once. Counted as wrong.");
        }
    }

    private static String excuse(BadAnswer b, ChaosUpstream upstream) {
        List<ChaosUpstream.Fault> faults = upstream.faultsOf(b.requestId());
        boolean refused = upstream.refusedDuring(b.sentNanos(), b.endNanos());
        if (faults.isEmpty() && !refused) {
            return null;
        }
        String cause = faults.isEmpty() ? "upstream refused connections" : "upstream " + faults.stream()
                .map(f -> f.name().toLowerCase()).distinct().reduce((x, y) -> x + "+" + y).orElse("");
        boolean errorShape = b.status() >= 400 && b.snippet().contains("\"error\"");
        if (b.kind().startsWith("status_") && errorShape) {
            return cause;
        }
        if (b.kind().equals("incomplete_body") && faults.contains(ChaosUpstream.Fault.DROP_MID)) {
            return cause;
        }
        return null;
    }

    private List<Check> checks(ChaosClients.Snapshot snap, ChaosUpstream upstream, Resources baseline,
                               Resources after, Resources end, Map<String, Long> probe, String leaks, boolean alive,
                               String oom) {
        List<Check> c = new ArrayList<>();
        ChaosResults.Wellbehaved wb = judge(snap, upstream);
        c.add(new Check("well-behaved answers", wb.failed() == 0 && wb.ok() > 0,
                "every checked request right, or excused (see the rule); at least one right",
                wb.ok() + " right, " + wb.excused() + " excused, " + wb.failed() + " wrong of " + wb.sent()
                        + (wb.failed() > 0 ? " " + wb.failedByKind() : "")));

        c.add(rssCheck());
        double heapGrowth = end.heapAfterGcMb() - baseline.heapAfterGcMb();
        c.add(new Check("heap after GC", Double.isNaN(heapGrowth) ? null : heapGrowth <= HEAP_GROWTH_MB,
                "heap in use after a full GC, at the end minus after the warm-up, <= " + (int) HEAP_GROWTH_MB + " MB",
                fmt(baseline.heapAfterGcMb()) + " MB -> " + fmt(end.heapAfterGcMb()) + " MB"));

        long upstreamExtra = Math.max(0, after.upstreamOpen() - baseline.upstreamOpen());
        long fdLimit = baseline.fds() + upstreamExtra + FD_SLACK;
        c.add(new Check("file descriptors back", after.fds() >= 0 && after.fds() <= fdLimit,
                "after the drain, fds <= baseline + extra idle upstream connections + " + FD_SLACK,
                baseline.fds() + " -> " + after.fds() + " (allowed " + fdLimit + ")"));

        int upLimit = Math.max(baseline.upstreamOpen(), POOL_IDLE);
        c.add(new Check("upstream connections back",
                after.upstreamOpen() <= upLimit && after.upstreamInProgress() == 0 && after.upstreamStreams() == 0,
                "after the drain, the mock has no exchange in progress and <= max(baseline, HTTP_POOL_CONNECTIONS="
                        + POOL_IDLE + ") connections (idle, pooled)",
                "open " + baseline.upstreamOpen() + " -> " + after.upstreamOpen() + ", in progress "
                        + after.upstreamInProgress() + ", streams " + after.upstreamStreams()));

        c.add(permitCheck(baseline, after, probe));
        c.addAll(leftChecks(snap, upstream));
        c.add(timeoutCheck(snap));

        c.add(new Check("no leak report", leaks.isEmpty(),
                "no \"LEAK:\" line in the proxy's console or app.log (leak detection " + cfg.leakLevel() + ")",
                leaks.isEmpty() ? "none" : leaks.trim()));
        c.add(new Check("proxy alive", alive && oom.isEmpty(), "the proxy process still runs; no OutOfMemoryError",
                (alive ? "alive" : "exited") + (oom.isEmpty() ? "" : "; " + oom.trim())));
        return c;
    }

    private Check rssCheck() {
        List<Sample> load = samples.stream().filter(s -> s.t() >= 0 && s.t() <= cfg.minutes() * 60
                && !Double.isNaN(s.rssMb())).toList();
        List<Sample> half = load.subList(load.size() / 2, load.size());
        if (half.size() < 3) {
            return new Check("RSS flat", null, "slope over the second half of the load", "too few samples");
        }
        double[] fit = Trend.fit(half.stream().mapToDouble(Sample::t).toArray(),
                half.stream().mapToDouble(Sample::rssMb).toArray());
        double perMin = fit[0] * 60;
        double rise = fit[0] * (half.get(half.size() - 1).t() - half.get(0).t());
        boolean ok = perMin <= RSS_SLOPE_MB_PER_MIN || rise <= RSS_RISE_MB;
        return new Check("RSS flat", ok, "least-squares slope of RSS over the second half of the load <= "
                + RSS_SLOPE_MB_PER_MIN + " MB/min, or the fitted rise over that half <= " + RSS_RISE_MB + " MB",
                String.format(Locale.ROOT, "%.2f MB/min, %.1f MB over %.0f s (%d samples), RSS %.0f -> %.0f MB",
                        perMin, rise, half.get(half.size() - 1).t() - half.get(0).t(), half.size(),
                        half.get(0).rssMb(), half.get(half.size() - 1).rssMb()));
    }

    private Check permitCheck(Resources baseline, Resources after, Map<String, Long> probe) {
        StringBuilder m = new StringBuilder();
        boolean ok = true;
        // The /metrics request reading them is itself in flight: compare with the baseline's reading.
        for (String g : List.of("megallm_active_requests", "megallm_active_streams")) {
            Double v = after.gauges().get(g);
            Double before = baseline.gauges().get(g);
            m.append(g).append(' ').append(before == null ? "n/a" : fmt(before)).append(" -> ")
                    .append(v == null ? "n/a" : fmt(v)).append(", ");
            if (v != null && before != null && v > before) {
                ok = false;
            }
        }
        for (Map.Entry<String, Double> e : after.gauges().entrySet()) {
            String k = e.getKey().toLowerCase();
            if (k.contains("permit") || k.contains("waiter")) {
                Double before = baseline.gauges().get(e.getKey());
                m.append(e.getKey()).append(' ').append(before == null ? "?" : fmt(before)).append(" -> ")
                        .append(fmt(e.getValue())).append(", ");
                if (before != null && !before.equals(e.getValue())) {
                    ok = false;
                }
            }
        }
        long heads = probe.getOrDefault("head_200", 0L);
        m.append("probe: ").append(heads).append('/').append(cfg.probeSize()).append(" streams got their head at once ")
                .append(probe);
        if (heads < cfg.probeSize()) {
            ok = false;
        }
        return new Check("permits back", ok, "after the drain, in-flight requests and streams in /metrics back to their baseline, permit "
                + "gauges (if any) at their baseline, and HTTP_POOL_MAXSIZE streams at once all get a connection", m.toString());
    }

    /** The 2 s rule for clients that left, and the SEND_TIMEOUT rule for the ones that stopped reading. */
    private List<Check> leftChecks(ChaosClients.Snapshot snap, ChaosUpstream upstream) {
        long now = System.nanoTime();
        Map<ChaosPattern, long[]> by = new java.util.EnumMap<>(ChaosPattern.class);
        // per pattern: total, never reached the mock, late, still open, sent after the client left, worst ms,
        // longest delay of a late send in ms
        for (Left l : snap.left()) {
            if (snap.abandoned().contains(l.requestId())) {
                continue; // a stalled reader the run's end closed before its cut was due
            }
            long[] a = by.computeIfAbsent(l.pattern(), k -> new long[7]);
            double bound = l.pattern() == ChaosPattern.STALLED_READER
                    ? SEND_TIMEOUT + STALL_FILL_SECONDS + CUT_SLACK_SECONDS : UPSTREAM_CLOSE_SECONDS;
            List<ChaosUpstream.Exchange> ex = upstream.exchangesOf(l.requestId());
            a[0]++;
            if (ex.isEmpty()) {
                a[1]++;
                continue;
            }
            for (ChaosUpstream.Exchange e : ex) {
                long endAt = e.endNanos == 0 ? now : e.endNanos;
                double lag = Math.max(0, (endAt - l.atNanos()) / 1e9);
                a[5] = Math.max(a[5], (long) (lag * 1000));
                if (e.startNanos > l.atNanos() + SENT_AFTER_GRACE_NANOS) {
                    a[4]++;
                    a[6] = Math.max(a[6], (e.startNanos - l.atNanos()) / 1_000_000);
                }
                if (e.endNanos == 0) {
                    a[3]++;
                } else if (lag > bound) {
                    a[2]++;
                }
            }
        }
        List<Check> out = new ArrayList<>();
        StringBuilder m = new StringBuilder();
        boolean ok = true;
        boolean any = false;
        for (ChaosPattern p : List.of(ChaosPattern.VANISH_STREAM, ChaosPattern.VANISH_WAITING)) {
            long[] a = by.getOrDefault(p, new long[7]);
            any |= a[0] > 0;
            ok &= a[2] == 0 && a[3] == 0 && a[4] == 0;
            m.append(describeLeft(p, a)).append("; ");
        }
        out.add(new Check("upstream closed within 2 s of the client leaving", any ? ok : null,
                "for every client that vanished mid-stream or while waiting for the head, every upstream exchange "
                        + "of its request ended <= " + UPSTREAM_CLOSE_SECONDS + " s after it left (contract §8, §12), "
                        + "and none reached the mock more than 0.1 s after the client left (§9: never sent)",
                m.toString().trim()));
        long[] st = by.getOrDefault(ChaosPattern.STALLED_READER, new long[7]);
        out.add(new Check("stalled readers cut", st[0] == 0 ? null : st[2] == 0 && st[3] == 0,
                "for every client that stopped reading a stream, its upstream ended <= SEND_TIMEOUT + "
                        + STALL_FILL_SECONDS + " s (buffers filling) + " + CUT_SLACK_SECONDS + " s after the stall (§9)",
                describeLeft(ChaosPattern.STALLED_READER, st)));
        return out;
    }

    private static String describeLeft(ChaosPattern p, long[] a) {
        return p.name().toLowerCase() + ": " + a[0] + " clients (" + a[1] + " never reached the mock), " + a[2]
                + " upstreams late, " + a[3] + " still open, " + a[4] + " sent upstream after the client had gone"
                + (a[4] > 0 ? " (up to " + fmt(a[6] / 1000.0) + " s after)" : "") + ", worst " + fmt(a[5] / 1000.0) + " s";
    }

    /** Slow heads, slow bodies and idle keep-alives must be cut by the proxy's client timeouts. */
    private Check timeoutCheck(ChaosClients.Snapshot snap) {
        StringBuilder m = new StringBuilder();
        boolean ok = true;
        boolean any = false;
        for (ChaosPattern p : List.of(ChaosPattern.SLOW_HEAD, ChaosPattern.SLOW_BODY, ChaosPattern.IDLE_KEEPALIVE)) {
            int timeout = p == ChaosPattern.SLOW_HEAD ? CLIENT_HEADER_TIMEOUT
                    : p == ChaosPattern.SLOW_BODY ? CLIENT_BODY_TIMEOUT : KEEPALIVE_TIMEOUT;
            double bound = timeout + CUT_SLACK_SECONDS;
            List<Double> cuts = snap.cutAfterSeconds().get(p);
            long lateCuts = cuts.stream().filter(x -> x > bound).count();
            long never = snap.outcomes().get(p).getOrDefault("never_cut", 0L)
                    + snap.outcomes().get(p).getOrDefault("held_until_run_end", 0L);
            any |= !cuts.isEmpty() || never > 0;
            ok &= lateCuts == 0 && never == 0;
            m.append(p.name().toLowerCase()).append(": ").append(cuts.size()).append(" cut (")
                    .append(lateCuts).append(" after ").append(fmt(bound)).append(" s), ").append(never)
                    .append(" never cut; ");
        }
        return new Check("client timeouts enforced", any ? ok : null,
                "slow heads cut <= CLIENT_HEADER_TIMEOUT + " + CUT_SLACK_SECONDS + " s, slow bodies <= CLIENT_BODY_TIMEOUT + "
                        + CUT_SLACK_SECONDS + " s after the body began, idle keep-alives <= KEEPALIVE_TIMEOUT + "
                        + CUT_SLACK_SECONDS + " s after their answer; none held to the hold limit ("
                        + cfg.holdSeconds() + " s)", m.toString().trim());
    }

    private List<PatternRow> patternRows(ChaosClients.Snapshot snap) {
        List<PatternRow> rows = new ArrayList<>();
        for (ChaosPattern p : ChaosPattern.values()) {
            List<Double> cuts = new ArrayList<>(snap.cutAfterSeconds().get(p));
            cuts.sort(null);
            rows.add(new PatternRow(p.name().toLowerCase(), p.description(), snap.started().get(p),
                    snap.outcomes().get(p), cuts.size(), cuts.isEmpty() ? Double.NaN : cuts.get(cuts.size() / 2),
                    cuts.isEmpty() ? Double.NaN : cuts.get(cuts.size() - 1)));
        }
        return rows;
    }

    static String fmt(double v) {
        return Double.isNaN(v) ? "n/a" : String.format(Locale.ROOT, "%.1f", v);
    }

    private static void deleteTree(Path root) {
        try (Stream<Path> paths = Files.walk(root)) {
            paths.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException e) {
            // best effort: a temp directory
        }
    }
}
