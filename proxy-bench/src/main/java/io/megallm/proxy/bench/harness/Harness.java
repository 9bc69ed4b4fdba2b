package io.megallm.proxy.bench.harness;

import io.megallm.proxy.bench.harness.LoadClient.LoadResult;
import io.megallm.proxy.bench.harness.LoadClient.StreamSet;
import io.megallm.proxy.bench.harness.LoadClient.StreamStats;
import io.megallm.proxy.bench.harness.Peers.Peer;
import io.megallm.proxy.bench.harness.Results.HeldRow;
import io.megallm.proxy.bench.harness.Results.LargeAnswerRow;
import io.megallm.proxy.bench.harness.Results.NonStreamRow;
import io.megallm.proxy.bench.harness.Results.OpenLoopRow;
import io.megallm.proxy.bench.harness.Results.ProfileSummary;
import io.megallm.proxy.bench.harness.Results.RunRecord;
import io.megallm.proxy.bench.harness.Results.ScenarioLoad;
import io.megallm.proxy.bench.harness.Results.SlowReaderRow;
import io.megallm.proxy.bench.harness.Results.StreamRow;
import io.netty.buffer.ByteBuf;

import java.io.IOException;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDate;
import java.time.OffsetDateTime;
import java.time.format.DateTimeFormatter;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The load harness: starts the mock, the peers and the load client, runs the scenarios with
 * the peers interleaved, and writes the report. Every wait is bounded.
 */
public final class Harness {

    private final BenchConfig cfg;
    private final PrintStream out;
    private final long t0 = System.nanoTime();
    private final List<Peer> peers = new ArrayList<>();
    private final List<Results.Skipped> skipped = new ArrayList<>();
    private final List<Results.PeerInfo> peerInfo = new ArrayList<>();
    private final List<String> notes = new ArrayList<>();
    private final List<RunRecord> runs = new ArrayList<>();
    private final List<ScenarioLoad> load = new ArrayList<>();
    private final List<NonStreamRow> nonStream = new ArrayList<>();
    private final List<NonStreamRow> wrk = new ArrayList<>();
    private final List<Results.TtfbRow> ttfb = new ArrayList<>();
    private final List<OpenLoopRow> openLoop = new ArrayList<>();
    private final List<StreamRow> streaming = new ArrayList<>();
    private final List<HeldRow> held = new ArrayList<>();
    private final List<SlowReaderRow> slow = new ArrayList<>();
    private final List<LargeAnswerRow> large = new ArrayList<>();
    private final List<ProfileSummary> profiles = new ArrayList<>();
    private final List<Results.SyscallRow> syscalls = new ArrayList<>();
    private final List<Results.WhatIfRow> whatIf = new ArrayList<>();
    private Service mock;
    private LoadClient client;
    private Path work;
    private Pinning pin;
    private WakeupProbe.Result wakeup = new WakeupProbe.Result(Double.NaN, Double.NaN, null);
    private double newFileStart = Double.NaN;
    private double newFileEnd = Double.NaN;

    public Harness(BenchConfig cfg, PrintStream out) {
        this.cfg = cfg;
        this.out = out;
    }

    /** Runs everything and writes the report into {@code cfg.outDir()}. */
    public Results run() throws Exception {
        String startedAt = OffsetDateTime.now().truncatedTo(ChronoUnit.SECONDS).toString();
        int cores = Runtime.getRuntime().availableProcessors();
        pin = cfg.pin() ? Pinning.forMachine(cores, true) : Pinning.none();
        String pinNote = pin.pinSelf();
        if (!pinNote.isEmpty()) {
            notes.add(pinNote);
        }
        work = Files.createTempDirectory("megallm-bench-");
        Thread hook = new Thread(this::closeAll, "bench-cleanup");
        Runtime.getRuntime().addShutdownHook(hook);
        log("work directory " + work + (cfg.keepWork() ? " (kept)" : " (deleted at the end; --keep-work keeps it)")
                + "; " + pin.describe());
        idleCheck();
        wakeup = WakeupProbe.measure(pin.enabled() ? pin.peerCpus() : null, 500);
        log(String.format(Locale.ROOT, "hop through a blocking relay thread: %.1f us on the same core, %s us across cores",
                wakeup.sameCoreUs(), ReportWriter.f(wakeup.crossCoreUs(), 1)));
        newFileStart = PageCacheProbe.nanosPerByte(work, NEW_FILE_PROBE_BYTES);
        log(String.format(Locale.ROOT, "writing a new file: %.2f ns a byte", newFileStart));
        try {
            mock = cfg.inProcessMock() ? Peers.mockInProcess()
                    : Peers.mockProcess(work, pin, absoluteClasspath());
            log("mock upstream on 127.0.0.1:" + mock.port() + (mock.pid() > 0 ? " (pid " + mock.pid() + ")" : ""));
            client = new LoadClient();
            startPeers();
            warmUp();
            if (cfg.runs("closed")) {
                scenario("non-stream closed loop", this::nonStreamScenario);
            }
            if (cfg.runs("wrk")) {
                scenario("non-stream closed loop, wrk", this::wrkScenario);
            }
            if (cfg.runs("open")) {
                scenario("non-stream open loop", this::openLoopScenario);
            }
            for (int count : cfg.streamCounts()) {
                if (cfg.runs("streams")) {
                    scenario("streaming, " + count + " streams", () -> streamScenario(count));
                }
                if (cfg.runs("ttfb")) {
                    scenario("time to first byte, h2load, " + count + " streams", () -> h2loadScenario(count));
                }
            }
            if (cfg.runs("held")) {
                scenario("open streams held", this::heldScenario);
            }
            if (cfg.runs("slow")) {
                scenario("slow reader", this::slowReaderScenario);
            }
            if (cfg.runs("large")) {
                scenario("large answers", this::largeAnswerScenario);
            }
            if (cfg.profile() && cfg.runs("profile")) {
                profile();
                syscallCounts();
                accessLogWhatIf();
            }
        } finally {
            newFileEnd = PageCacheProbe.nanosPerByte(work, NEW_FILE_PROBE_BYTES);
            log(String.format(Locale.ROOT, "writing a new file, at the end: %.2f ns a byte", newFileEnd));
            closeAll();
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException e) {
                // shutting down already
            }
        }
        if (!cfg.keepWork()) {
            // Peers' logs (the access logs of Nginx and the proxy run to hundreds of MB) are not kept.
            deleteTree(work);
        }
        Results r = results(startedAt, cores);
        Path dir = cfg.outDir();
        List<String> chartNotes = ReportWriter.write(r, dir);
        chartNotes.forEach(n -> log("note: " + n));
        log("report: " + dir.resolve(ReportWriter.REPORT) + " (" + ReportWriter.f(seconds(), 0) + " s in all)");
        return r;
    }

    // ---- set-up -----------------------------------------------------------------------------

    private void startPeers() {
        for (String name : BenchConfig.ALL_PEERS) {
            if (!cfg.peers().contains(name)) {
                continue;
            }
            try {
                Peer p = switch (name) {
                    case Peers.DIRECT -> new Peer(Peers.DIRECT, "the mock itself, no hop (the limit)", mock.port(), null);
                    case Peers.NGINX -> Peers.nginx(work, pin, mock.port());
                    case Peers.HAPROXY -> Peers.haproxy(work, pin, mock.port());
                    case Peers.PROXY -> cfg.proxyJar() == null ? Peers.proxyInProcess(work, mock.port())
                            : Peers.proxyProcess(cfg.proxyJar(), cfg.proxyJvmOptions(), work, pin, mock.port());
                    case Peers.PROXY_IMAGE -> {
                        if (cfg.proxyJar() == null) {
                            throw new IOException("needs the proxy jar (not run inside the harness JVM)");
                        }
                        yield Peers.proxyImageProcess(cfg.proxyJar(), work, pin, mock.port());
                    }
                    default -> throw new IllegalArgumentException(name);
                };
                String description = p.description();
                if (Peers.isProxy(p.name()) && p.pid() > 0) {
                    description += "; " + jvmFlags(p.pid()) + "; " + buildOf(cfg.proxyJar());
                }
                peers.add(p);
                peerInfo.add(new Results.PeerInfo(p.name(), description));
                log("peer " + p.name() + " on 127.0.0.1:" + p.port() + (p.pid() > 0 ? " (pid " + p.pid() + ")" : ""));
            } catch (Exception e) {
                skipped.add(new Results.Skipped(name, e.getMessage()));
                log("peer " + name + " SKIPPED: " + e.getMessage());
            }
        }
    }

    private static String jvmFlags(long pid) {
        Tools.Result r = Tools.run(List.of(Tools.jdkTool("jcmd"), Long.toString(pid), "VM.flags"), 20);
        if (r.code() != 0) {
            return "JVM flags unknown";
        }
        Matcher gc = Pattern.compile("-XX:\\+Use(\\w+)GC\\b").matcher(r.output());
        Matcher heap = Pattern.compile("-XX:MaxHeapSize=(\\d+)").matcher(r.output());
        String g = gc.find() ? gc.group(1) + " GC" : "default GC";
        String h = heap.find() ? (Long.parseLong(heap.group(1)) >> 20) + " MB max heap" : "default heap";
        return "JVM ergonomics chose " + g + ", " + h;
    }

    /** Which code the jar holds: its time, and the repository's commit when it sits in one. */
    static String buildOf(Path jar) {
        String when;
        try {
            when = Files.getLastModifiedTime(jar).toInstant().truncatedTo(ChronoUnit.SECONDS).toString();
        } catch (IOException e) {
            when = "?";
        }
        Path root = jar.toAbsolutePath().getParent() == null ? null : jar.toAbsolutePath().getParent().getParent();
        root = root == null ? null : root.getParent();
        String commit = "";
        if (root != null && Tools.has("git")) {
            Tools.Result head = Tools.run(List.of("git", "-C", root.toString(), "rev-parse", "--short", "HEAD"), 10);
            if (head.code() == 0) {
                Tools.Result dirty = Tools.run(List.of("git", "-C", root.toString(), "status", "--porcelain",
                        "--", "proxy-core", "proxy-server"), 10);
                commit = ", repository at commit " + head.output().trim()
                        + (dirty.code() == 0 && !dirty.output().isBlank() ? " with uncommitted changes in proxy-core/proxy-server" : "");
            }
        }
        return "jar built " + when + commit;
    }

    /** One second of /proc/stat before anything starts: is something else using the machine? */
    private void idleCheck() {
        long[] s0 = Procfs.systemTicks();
        long own0 = Procfs.cpuTicks(ProcessHandle.current().pid());
        ProcessService.sleep(1000);
        long[] s1 = Procfs.systemTicks();
        long own1 = Procfs.cpuTicks(ProcessHandle.current().pid());
        double other = ((s1[0] - s0[0]) - (own1 - own0)) / (double) Procfs.TICKS_PER_SECOND;
        String la = Procfs.loadavg();
        log(String.format(Locale.ROOT, "before start: loadavg %s, other processes used %.2f cores", la, other));
        if (other > 0.3) {
            notes.add(String.format(Locale.ROOT, "the machine was busy before the run: other processes used %.2f "
                    + "cores in the second before it started (loadavg %s); numbers may be noisy", other, la));
        }
    }

    /**
     * Warms every peer up before anything is measured. A JVM on one core compiles its hot code
     * for a minute or more while it serves, and each compilation takes the event loop's core for
     * up to several milliseconds: {@code perf sched} on the proxy's core, 35 s into a run, showed
     * C2 runs of up to 5.4 ms in a 4 s window, each one a stall for every request in flight, which
     * is a p99 the relay does not have once warm. So our proxy is driven in rounds (16 and 64
     * connections, a burst at 256, a burst of streams) until its throughput is steady (three
     * rounds within {@value #STEADY_SPREAD} of their mean) and its JIT compiler threads used at
     * most {@value #QUIET_COMPILER_SHARE} of the last round's time, or {@code peerWarmupSeconds}
     * have passed. Nginx and HAProxy have no JIT: one short round.
     */
    private void warmUp() throws Exception {
        for (Peer p : peers) {
            boolean jvm = Peers.isProxy(p.name());
            warmPeer(p, jvm ? cfg.peerWarmupSeconds() : Math.min(1.0, cfg.peerWarmupSeconds()), jvm);
        }
    }

    private void warmPeer(Peer p, double budget, boolean untilSteady) throws Exception {
        double round = Math.min(1.0, budget);
        long deadline = System.nanoTime() + (long) (budget * 1e9);
        List<Double> seen = new ArrayList<>();
        double compilerShare;
        do {
            long c0 = Procfs.compilerTicks(p.pid());
            long t0 = System.nanoTime();
            closedRun(p, 16, 0, round / 3);
            seen.add(closedRun(p, 64, 0, round).result().throughput());
            closedRun(p, 256, 0, round / 3);
            StreamSet set = client.streams(addr(p), Requests.stream(p.port(), 10, 10, 0), 50, 5000, false, false);
            await(set.ended(), 10);
            compilerShare = compilerShareSince(p, c0, t0);
        } while (untilSteady && !(steady(seen) && compilerShare <= QUIET_COMPILER_SHARE)
                && System.nanoTime() < deadline);
        String jit = untilSteady && p.pid() > 0
                ? String.format(Locale.ROOT, ", JIT compilers %.1f %% of the last round", 100 * compilerShare) : "";
        log(String.format(Locale.ROOT, "warm-up of %s: %d round(s), %s req/s at 64 connections in the last%s",
                p.name(), seen.size(), ReportWriter.f(seen.get(seen.size() - 1), 0), jit));
        notes.add("warm-up of " + p.name() + ": " + seen.size() + " round(s)" + jit);
    }

    /** The share of the time since {@code startNanos} that the peer's JIT compiler threads used. */
    private static double compilerShareSince(Peer p, long startTicks, long startNanos) {
        return (Procfs.compilerTicks(p.pid()) - startTicks) / (double) Procfs.TICKS_PER_SECOND
                / ((System.nanoTime() - startNanos) / 1e9);
    }

    /**
     * The new-file probe at the start and end of a run: enough pages (8,192) that a host fault per
     * fresh page shows, little enough to take a fraction of a second where pages are cheap.
     */
    static final long NEW_FILE_PROBE_BYTES = 32L * 1024 * 1024;

    /** The JIT is taken as done when its compiler threads use at most this share of a round. */
    static final double QUIET_COMPILER_SHARE = 0.01;

    /**
     * The last three rounds within 3 % of their mean. 8 % let the JVM stop after about 7 s while
     * C2 was still compiling: the same process ran 3-5 % faster a few seconds later.
     */
    static final double STEADY_SPREAD = 0.03;

    static boolean steady(List<Double> values) {
        if (values.size() < 3) {
            return false;
        }
        List<Double> last = values.subList(values.size() - 3, values.size());
        double mean = last.stream().mapToDouble(Double::doubleValue).average().orElse(0);
        return mean > 0 && last.stream().allMatch(v -> Math.abs(v - mean) <= STEADY_SPREAD * mean);
    }

    // ---- scenarios --------------------------------------------------------------------------

    @FunctionalInterface
    interface Body {
        void run() throws Exception;
    }

    private void scenario(String name, Body body) throws Exception {
        String la = Procfs.loadavg();
        long[] s0 = Procfs.systemTicks();
        long own0 = ownTicks();
        // The price moves within minutes (memory just freed is cheap until the VM reports it to its
        // host), so the start and end of a run say little about the scenarios in between.
        double newFile = PageCacheProbe.nanosPerByte(work, NEW_FILE_PROBE_BYTES);
        notes.add("writing a new file just before \"" + name + "\": " + ReportWriter.f(newFile, 2) + " ns a byte");
        long w0 = System.nanoTime();
        log("== " + name + " (loadavg " + la + "; writing a new file " + ReportWriter.f(newFile, 2) + " ns a byte)");
        body.run();
        long[] s1 = Procfs.systemTicks();
        long own1 = ownTicks();
        double wall = (System.nanoTime() - w0) / 1e9;
        double other = ((s1[0] - s0[0]) - (own1 - own0)) / (double) Procfs.TICKS_PER_SECOND / wall;
        load.add(new ScenarioLoad(name, la, Math.max(0, other), wall));
    }

    private long ownTicks() {
        long sum = Procfs.cpuTicks(ProcessHandle.current().pid());
        if (mock != null && mock.pid() > 0) {
            sum += Procfs.cpuTicksTree(mock.pid());
        }
        for (Peer p : peers) {
            if (p.pid() > 0) {
                sum += Procfs.cpuTicksTree(p.pid());
            }
        }
        return sum;
    }

    /** Outcome of one closed-loop run with the peer's CPU use during the measured window. */
    record ClosedOutcome(LoadResult result, double peerCpuSeconds) {
    }

    private ClosedOutcome closedRun(Peer p, int connections, double warmup, double measure) throws Exception {
        long start = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(20);
        long warmNanos = (long) (warmup * 1e9);
        long measureNanos = (long) (measure * 1e9);
        CompletableFuture<LoadResult> f = client.closedLoop(addr(p), Requests.nonStream(p.port()), connections,
                start, warmNanos, measureNanos);
        sleepUntil(start + warmNanos);
        long c0 = p.pid() > 0 ? Procfs.cpuTicksTree(p.pid()) : 0;
        sleepUntil(start + warmNanos + measureNanos);
        long c1 = p.pid() > 0 ? Procfs.cpuTicksTree(p.pid()) : 0;
        LoadResult r = await(f, measure + warmup + 30);
        return new ClosedOutcome(r, p.pid() > 0 ? (c1 - c0) / (double) Procfs.TICKS_PER_SECOND : Double.NaN);
    }

    /** One unmeasured closed-loop run of the given length, by the scenario's own client. */
    @FunctionalInterface
    interface ClosedLoad {
        void run(Peer p, int connections, double seconds) throws Exception;
    }

    /**
     * In a full run, before the closed-loop trials: for each JVM peer, a pause and then one
     * unmeasured run per level, until its JIT compilers used at most
     * {@value #QUIET_REHEARSAL_SHARE} of two such rounds in a row (at most
     * {@value #MAX_CLOSED_REHEARSALS}). The warm-up runs the levels back to back, and HotSpot holds
     * methods at C1's profiling tier while C2's queue is busy; after a pause, as between a peer's
     * trials, it promotes them at once. In the eighth full run the wrk trials of JDK 17 right after
     * the warm-up had the compilers at 5.3 % (256 connections) and 0.8-1.0 % in the next round, each
     * compilation taking the event loop's core for milliseconds: that is p99, not the relay. The
     * rehearsal uses the trials' own client: after one with the harness's client the first wrk
     * trial still had C2 at 6 % (wrk's request is not byte for byte the same).
     */
    private void rehearseClosedLoop(ClosedLoad load) throws Exception {
        if (!cfg.mode().equals("full")) {
            return;
        }
        double secs = Math.max(1, cfg.warmupSeconds()) + Math.max(1, Math.round(cfg.measureSeconds()));
        // Long enough for C2 to empty its queue while nothing else wants the core.
        long pauseMillis = CLOSED_REHEARSAL_PAUSE_MILLIS;
        for (Peer p : peers) {
            if (!Peers.isProxy(p.name()) || p.pid() <= 0) {
                continue;
            }
            int rounds = 0;
            int quiet = 0;
            double share = 1;
            while (quiet < 2 && rounds < MAX_CLOSED_REHEARSALS) {
                ProcessService.sleep(pauseMillis);
                long c0 = Procfs.compilerTicks(p.pid());
                long t0 = System.nanoTime();
                for (int conns : cfg.connectionLevels()) {
                    load.run(p, conns, secs);
                }
                share = compilerShareSince(p, c0, t0);
                rounds++;
                quiet = share <= QUIET_REHEARSAL_SHARE ? quiet + 1 : 0;
            }
            String line = String.format(Locale.ROOT, "closed-loop rehearsal of %s: %d round(s) after a pause of %.0f s, "
                    + "JIT compilers %.1f %% of the last", p.name(), rounds, pauseMillis / 1000.0, 100 * share);
            log(line);
            notes.add(line);
        }
    }

    static final int MAX_CLOSED_REHEARSALS = 4;
    static final long CLOSED_REHEARSAL_PAUSE_MILLIS = 10_000;

    private void nonStreamScenario() throws Exception {
        rehearseClosedLoop((p, conns, secs) -> closedRun(p, conns, 0, secs));
        Map<String, List<Double>> rps = new LinkedHashMap<>();
        Map<String, LatencyRecorder> lat = new HashMap<>();
        Map<String, long[]> counts = new HashMap<>(); // ok, errors
        Map<String, Double> cpu = new HashMap<>();
        for (int trial = 1; trial <= cfg.trials(); trial++) {
            for (int conns : cfg.connectionLevels()) {
                for (Peer p : rotated(peers, trial - 1)) {
                    String la = Procfs.loadavg();
                    ClosedOutcome o = closedRun(p, conns, cfg.warmupSeconds(), cfg.measureSeconds());
                    LoadResult r = o.result();
                    String k = p.name() + "/" + conns;
                    rps.computeIfAbsent(k, x -> new ArrayList<>()).add(r.throughput());
                    lat.computeIfAbsent(k, x -> new LatencyRecorder()).addAll(r.latencies());
                    long[] c = counts.computeIfAbsent(k, x -> new long[2]);
                    c[0] += r.ok();
                    c[1] += r.errors();
                    cpu.merge(k, o.peerCpuSeconds(), Double::sum);
                    LatencySummary s = r.latencies().summary();
                    runs.add(new RunRecord("non-stream closed loop", p.name(), trial, conns, cfg.measureSeconds(),
                            r.throughput(), r.ok(), r.errors(), s.p50Ms(), s.p99Ms(),
                            o.peerCpuSeconds() / cfg.measureSeconds(), la));
                    log(String.format(Locale.ROOT, "trial %d, %3d conns, %-7s %9.0f req/s  p50 %.2f  p99 %.2f ms  errors %d  "
                                    + "peer CPU %.2f cores", trial, conns, p.name(), r.throughput(), s.p50Ms(), s.p99Ms(),
                            r.errors(), o.peerCpuSeconds() / cfg.measureSeconds()));
                }
            }
        }
        for (int conns : cfg.connectionLevels()) {
            for (Peer p : peers) {
                String k = p.name() + "/" + conns;
                List<Double> t = rps.get(k);
                if (t == null) {
                    continue;
                }
                long[] c = counts.get(k);
                double cpuUs = cpu.get(k) * 1e6 / Math.max(1, c[0]);
                nonStream.add(new NonStreamRow(p.name(), conns, t.size(),
                        Percentiles.median(t.stream().mapToDouble(Double::doubleValue).toArray()), t,
                        lat.get(k).summary(), c[0], c[1], cpuUs));
            }
        }
    }

    /**
     * The closed-loop rows again with wrk as the load generator: same levels, trials, warm-up and
     * rotation; each measured run follows an unmeasured one of the warm-up's length (wrk has no
     * warm-up of its own), and the peer's CPU is read around the measured run.
     */
    private void wrkScenario() throws Exception {
        if (!Tools.has("wrk")) {
            skipped.add(new Results.Skipped("wrk rows", "wrk is not installed (apt-get install wrk)"));
            log("wrk rows SKIPPED: wrk is not installed");
            return;
        }
        Path script = ExternalLoad.writeWrkScript(work.resolve("wrk"));
        rehearseClosedLoop((p, conns, secs) -> ExternalLoad.wrk(pin, script, p.port(), conns, secs));
        Map<String, List<Double>> rps = new LinkedHashMap<>();
        Map<String, List<ExternalLoad.WrkOutcome>> outcomes = new HashMap<>();
        Map<String, Double> cpu = new HashMap<>();
        double warm = Math.max(1, cfg.warmupSeconds());
        double measure = Math.max(1, Math.round(cfg.measureSeconds()));
        for (int trial = 1; trial <= cfg.trials(); trial++) {
            for (int conns : cfg.connectionLevels()) {
                for (Peer p : rotated(peers, trial - 1)) {
                    String la = Procfs.loadavg();
                    ExternalLoad.wrk(pin, script, p.port(), conns, warm);
                    long c0 = p.pid() > 0 ? Procfs.cpuTicksTree(p.pid()) : 0;
                    long j0 = p.pid() > 0 ? Procfs.compilerTicks(p.pid()) : 0;
                    long t0 = System.nanoTime();
                    ExternalLoad.WrkOutcome o = ExternalLoad.wrk(pin, script, p.port(), conns, measure);
                    long c1 = p.pid() > 0 ? Procfs.cpuTicksTree(p.pid()) : 0;
                    // A compilation on the peer's core during the measured run shows in its p99.
                    String jit = Peers.isProxy(p.name()) && p.pid() > 0
                            ? String.format(Locale.ROOT, "  JIT compilers %.1f %%", 100 * compilerShareSince(p, j0, t0))
                            : "";
                    double cpuSeconds = p.pid() > 0 ? (c1 - c0) / (double) Procfs.TICKS_PER_SECOND : Double.NaN;
                    String k = p.name() + "/" + conns;
                    if (Double.isNaN(o.throughputRps())) {
                        notes.add("wrk printed no result for " + k + ": " + o.raw().lines().limit(3).toList());
                        continue;
                    }
                    rps.computeIfAbsent(k, x -> new ArrayList<>()).add(o.throughputRps());
                    outcomes.computeIfAbsent(k, x -> new ArrayList<>()).add(o);
                    cpu.merge(k, cpuSeconds, Double::sum);
                    runs.add(new RunRecord("non-stream closed loop, wrk", p.name(), trial, conns, measure,
                            o.throughputRps(), o.requests(), o.errors(), o.latency().p50Ms(), o.latency().p99Ms(),
                            cpuSeconds / measure, la));
                    log(String.format(Locale.ROOT, "wrk trial %d, %3d conns, %-11s %9.0f req/s  p50 %.2f  p99 %.2f ms"
                                    + "  errors %d  peer CPU %.2f cores%s", trial, conns, p.name(), o.throughputRps(),
                            o.latency().p50Ms(), o.latency().p99Ms(), o.errors(), cpuSeconds / measure, jit));
                }
            }
        }
        for (int conns : cfg.connectionLevels()) {
            for (Peer p : peers) {
                String k = p.name() + "/" + conns;
                List<ExternalLoad.WrkOutcome> os = outcomes.get(k);
                if (os == null) {
                    continue;
                }
                long ok = os.stream().mapToLong(ExternalLoad.WrkOutcome::requests).sum();
                long errors = os.stream().mapToLong(ExternalLoad.WrkOutcome::errors).sum();
                double cpuUs = cpu.get(k) * 1e6 / Math.max(1, ok);
                wrk.add(new NonStreamRow(p.name(), conns, os.size(),
                        Percentiles.median(rps.get(k).stream().mapToDouble(Double::doubleValue).toArray()), rps.get(k),
                        medianLatency(os), ok, errors, cpuUs));
            }
        }
    }

    /**
     * wrk gives each run's percentiles, not its samples: the trials' percentiles are combined by
     * their median (the same statistic as the throughput), the max by the max.
     */
    static LatencySummary medianLatency(List<ExternalLoad.WrkOutcome> os) {
        java.util.function.ToDoubleFunction<java.util.function.ToDoubleFunction<LatencySummary>> med = f ->
                Percentiles.median(os.stream().mapToDouble(o -> f.applyAsDouble(o.latency())).toArray());
        long count = os.stream().mapToLong(o -> o.latency().count()).sum();
        double max = os.stream().mapToDouble(o -> o.latency().maxMs()).max().orElse(Double.NaN);
        return new LatencySummary(count, med.applyAsDouble(LatencySummary::meanMs), med.applyAsDouble(LatencySummary::p50Ms),
                med.applyAsDouble(LatencySummary::p90Ms), med.applyAsDouble(LatencySummary::p99Ms),
                med.applyAsDouble(LatencySummary::p999Ms), max);
    }

    /** Time to first byte of {@code count} streams opened at once, measured by h2load --h1, peers rotated. */
    private void h2loadScenario(int count) throws Exception {
        if (!Tools.has("h2load")) {
            skipped.add(new Results.Skipped("h2load rows", "h2load is not installed (apt-get install nghttp2-client)"));
            log("h2load rows SKIPPED: h2load is not installed");
            return;
        }
        burstWarmUp(count);
        // The first byte is what is measured: short streams, the same interval as the stream scenario.
        int events = 10;
        long interval = cfg.streamIntervalMs();
        Map<String, List<ExternalLoad.TtfbOutcome>> all = new LinkedHashMap<>();
        for (int trial = 1; trial <= cfg.streamTrials(); trial++) {
            for (Peer p : rotated(peers, trial - 1)) {
                ExternalLoad.TtfbOutcome o = ExternalLoad.h2load(pin, work.resolve("h2load"), p.port(), count, events,
                        interval);
                if (Double.isNaN(o.meanMs())) {
                    notes.add("h2load printed no result for " + p.name() + " at " + count + " streams: "
                            + o.raw().lines().limit(3).toList());
                    continue;
                }
                all.computeIfAbsent(p.name(), x -> new ArrayList<>()).add(o);
                log(String.format(Locale.ROOT, "h2load trial %d, %d streams, %-11s TTFB min %.2f  mean %.2f  max %.2f ms"
                        + "  succeeded %d  failed %d", trial, count, p.name(), o.minMs(), o.meanMs(), o.maxMs(),
                        o.succeeded(), o.failed()));
            }
        }
        for (Peer p : peers) {
            List<ExternalLoad.TtfbOutcome> os = all.get(p.name());
            if (os == null) {
                continue;
            }
            ttfb.add(new Results.TtfbRow(p.name(), count, os.size(),
                    os.stream().mapToLong(ExternalLoad.TtfbOutcome::succeeded).sum(),
                    os.stream().mapToLong(ExternalLoad.TtfbOutcome::failed).sum(),
                    os.stream().mapToDouble(ExternalLoad.TtfbOutcome::minMs).min().orElse(Double.NaN),
                    os.stream().mapToDouble(ExternalLoad.TtfbOutcome::meanMs).average().orElse(Double.NaN),
                    os.stream().mapToDouble(ExternalLoad.TtfbOutcome::maxMs).max().orElse(Double.NaN),
                    os.stream().mapToDouble(ExternalLoad.TtfbOutcome::sdMs).average().orElse(Double.NaN)));
        }
    }

    /**
     * Half the lowest closed-loop peak among the proxying peers (direct's when it is alone), from
     * the harness's client's rows, or wrk's when this run has only those.
     */
    double openLoopRate() {
        List<NonStreamRow> closed = nonStream.isEmpty() ? wrk : nonStream;
        double lowest = Double.MAX_VALUE;
        double direct = 0;
        for (NonStreamRow x : closed) {
            double peak = closed.stream().filter(y -> y.peer().equals(x.peer()))
                    .mapToDouble(NonStreamRow::throughputRps).max().orElse(0);
            if (x.peer().equals(Peers.DIRECT)) {
                direct = peak;
            } else {
                lowest = Math.min(lowest, peak);
            }
        }
        double base = lowest == Double.MAX_VALUE ? direct : lowest;
        return Math.max(1, base / 2);
    }

    private void openLoopScenario() throws Exception {
        double rate = openLoopRate();
        log(String.format(Locale.ROOT, "rate %.0f req/s for every peer", rate));
        for (Peer p : rotated(peers, 1)) {
            long start = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(50);
            long warm = (long) (Math.min(1.0, 2 * cfg.warmupSeconds()) * 1e9);
            long measure = (long) (cfg.openLoopSeconds() * 1e9);
            String la = Procfs.loadavg();
            LoadResult r = await(client.openLoop(addr(p), Requests.nonStream(p.port()), cfg.openLoopConnections(), rate,
                    start, warm, measure), cfg.openLoopSeconds() + 30);
            LatencySummary s = r.latencies().summary();
            openLoop.add(new OpenLoopRow(p.name(), cfg.openLoopConnections(), rate, r.throughput(), s, r.ok(),
                    r.errors()));
            runs.add(new RunRecord("non-stream open loop", p.name(), 1, cfg.openLoopConnections(),
                    cfg.openLoopSeconds(), r.throughput(), r.ok(), r.errors(), s.p50Ms(), s.p99Ms(), Double.NaN, la));
            log(String.format(Locale.ROOT, "open loop %-7s %8.0f req/s  p50 %.3f  p99 %.3f  p99.9 %.3f ms  errors %d",
                    p.name(), r.throughput(), s.p50Ms(), s.p99Ms(), s.p999Ms(), r.errors()));
        }
    }

    /**
     * Unmeasured bursts of short streams through every peer before a streaming scenario: in a full
     * run at least {@value #WARM_BURST_STREAMS} streams of {@value #WARM_BURST_EVENTS} events each per
     * burst (more when the scenario has more), at the scenario's interval so that the streams' timers
     * run as in the trials, at least {@value #WARM_BURSTS} bursts, and for our proxy
     * more until its JIT compiler threads used at most {@value #QUIET_COMPILER_SHARE} of the time
     * in each of the last two bursts (at most {@value #MAX_WARM_BURSTS}). The closed-loop warm-up
     * keeps its connections, so the code that accepts a client, opens an upstream connection and
     * tears both down runs cold in the first bursts, and a method invoked once per connection needs
     * thousands of connections before C2 compiles it: on one core the proxy's first 1,000-stream
     * bursts took 1.2-1.4 s of CPU and a mean time to first byte of 254 ms, the fourth 0.5 s and
     * 68-80 ms, level with Nginx (0.37 s, 68-76 ms). Bursts of the scenario's own size were not
     * enough before 100 streams: 70 bursts of 100 (7,000 connections) still had C2 compiling
     * per-connection methods, and the trials that followed had it compiling on the proxy's core
     * (0.6-1.2 % of the trial) with per-event p99 up to 2.6 ms. One quiet burst was not enough
     * either: C2 works in spurts. A server that has been up a while has run those paths. In a full
     * run the bursts end with an unmeasured trial of the scenario's own shape ({@link #rehearse}).
     */
    private void burstWarmUp(int count) throws Exception {
        // The quick and smoke runs keep bursts of the scenario's size: they show that it works, not how fast.
        int size = cfg.mode().equals("full") ? Math.max(count, WARM_BURST_STREAMS) : count;
        for (Peer p : peers) {
            boolean jvm = Peers.isProxy(p.name());
            int bursts = 0;
            int quietInARow = 0;
            double compilerShare = 1;
            while (bursts < WARM_BURSTS || (jvm && quietInARow < 2 && bursts < MAX_WARM_BURSTS)) {
                long c0 = Procfs.compilerTicks(p.pid());
                long t0 = System.nanoTime();
                StreamSet set = client.streams(addr(p), Requests.stream(p.port(), WARM_BURST_EVENTS,
                        cfg.streamIntervalMs(), 0), size,
                        Math.max(2000, size * 10), false, false);
                try {
                    await(set.ended(), 30);
                } catch (TimeoutException e) {
                    set.closeAll();
                }
                bursts++;
                compilerShare = compilerShareSince(p, c0, t0);
                quietInARow = compilerShare <= QUIET_COMPILER_SHARE ? quietInARow + 1 : 0;
            }
            String shaped = "";
            if (cfg.mode().equals("full")) {
                int rehearsals = 0;
                int quiet = 0;
                double share = 1;
                while (rehearsals < 1 || (jvm && quiet < 2 && rehearsals < MAX_REHEARSALS)) {
                    share = rehearse(p, count);
                    rehearsals++;
                    quiet = share <= QUIET_REHEARSAL_SHARE ? quiet + 1 : 0;
                }
                shaped = String.format(Locale.ROOT, "; then %d unmeasured trial(s) of the scenario's own shape, "
                        + "JIT compilers %.1f %% of the last", rehearsals, 100 * share);
            }
            if (jvm) {
                String line = String.format(Locale.ROOT, "burst warm-up of %s before %d streams: %d burst(s) of %d "
                        + "streams, JIT compilers %.1f %% of the last%s", p.name(), count, bursts, size,
                        100 * compilerShare, shaped);
                log(line);
                notes.add(line);
            }
        }
    }

    /**
     * One unmeasured trial after a pause as long as a trial: {@code count} streams of the streams
     * scenario's length (h2load's scenario, whose streams are shorter, gets the same). The bursts
     * leave per-connection and timer code at C1's profiling tier: while they keep C2's queue busy, HotSpot raises the thresholds for tier 4 with the queue's length
     * ({@code Tier4LoadFeedback}), and once the queue has drained in a pause the next load promotes
     * those methods at once. In the measured trials, each after the other peers' trials, that meant
     * C2 compiling on the peer's core at the moment 1,000 streams opened (1-5 % of the trial,
     * LogCompilation: Netty's scheduler, promise and pipeline code, {@code HashMap.resize}), with
     * TTFB p50 up to 36 ms where a quiet trial had 2-5 ms. So the rehearsal repeats the trials'
     * rhythm, a pause and then the load, until the compilers stay quiet in two in a row.
     */
    private double rehearse(Peer p, int count) throws Exception {
        long interval = cfg.streamIntervalMs();
        double seconds = cfg.streamEvents() * interval / 1000.0;
        ProcessService.sleep((long) (seconds * 1000));
        long c0 = Procfs.compilerTicks(p.pid());
        long t0 = System.nanoTime();
        StreamSet set = client.streams(addr(p), Requests.stream(p.port(), cfg.streamEvents(), interval, 0), count,
                Math.max(2000, count * 10), false, false);
        try {
            await(set.ended(), seconds + 20);
        } catch (TimeoutException e) {
            set.closeAll();
        }
        return compilerShareSince(p, c0, t0);
    }

    static final int WARM_BURST_STREAMS = 1000;
    static final int WARM_BURST_EVENTS = 60;
    static final int WARM_BURSTS = 3;
    static final int MAX_WARM_BURSTS = 40;
    static final int MAX_REHEARSALS = 10;
    /**
     * Stricter than {@link #QUIET_COMPILER_SHARE}: a trial with C2 at 1 % of it (50 ms in 5 s, at
     * the moment 1,000 streams open) had a TTFB p50 six times a quiet one's. One clock tick of
     * compiling in a 5-s rehearsal is 0.2 %.
     */
    static final double QUIET_REHEARSAL_SHARE = 0.003;

    private void streamScenario(int count) throws Exception {
        burstWarmUp(count);
        Map<String, StreamStats> merged = new LinkedHashMap<>();
        Map<String, long[]> counters = new HashMap<>(); // events, completed, errors
        Map<String, List<Double>> ttfbP99s = new HashMap<>();
        int events = cfg.streamEvents();
        long interval = cfg.streamIntervalMs();
        double expectSeconds = events * interval / 1000.0;
        for (int trial = 1; trial <= cfg.streamTrials(); trial++) {
            for (Peer p : rotated(peers, trial - 1)) {
                String la = Procfs.loadavg();
                long c0 = p.pid() > 0 ? Procfs.compilerTicks(p.pid()) : 0;
                long t0 = System.nanoTime();
                StreamSet set = client.streams(addr(p), Requests.stream(p.port(), events, interval, 0), count,
                        Math.max(2000, count * 10), true, false);
                StreamStats s;
                try {
                    s = await(set.ended(), expectSeconds + 20);
                } catch (TimeoutException e) {
                    set.closeAll();
                    s = set.statsNow();
                }
                StreamStats m = merged.computeIfAbsent(p.name(), x -> new StreamStats());
                m.ttfb.addAll(s.ttfb);
                m.perEvent.addAll(s.perEvent);
                LatencySummary first = s.ttfb.summary();
                ttfbP99s.computeIfAbsent(p.name(), x -> new ArrayList<>()).add(first.p99Ms());
                long[] c = counters.computeIfAbsent(p.name(), x -> new long[3]);
                c[0] += s.events;
                c[1] += s.completed;
                c[2] += s.errors() + (count - s.completed - s.errors() > 0 ? count - s.completed - s.errors() : 0);
                LatencySummary ev = s.perEvent.summary();
                runs.add(new RunRecord("streaming " + count, p.name(), trial, count, expectSeconds, Double.NaN,
                        s.events, s.errors(), ev.p50Ms(), ev.p99Ms(), Double.NaN, la));
                String jit = Peers.isProxy(p.name()) && p.pid() > 0
                        ? String.format(Locale.ROOT, "  JIT compilers %.1f %%", 100 * compilerShareSince(p, c0, t0)) : "";
                log(String.format(Locale.ROOT, "trial %d, %d streams, %-7s events %d/%d  per-event p50 %.3f  p99 %.3f ms"
                                + "  TTFB p50 %.2f  p99 %.2f ms  errors %d%s", trial, count, p.name(), s.events,
                        (long) count * events, ev.p50Ms(), ev.p99Ms(), first.p50Ms(), first.p99Ms(),
                        s.errors(), jit));
            }
        }
        for (Peer p : peers) {
            StreamStats m = merged.get(p.name());
            if (m == null) {
                continue;
            }
            long[] c = counters.get(p.name());
            streaming.add(new StreamRow(p.name(), count, events, interval, cfg.streamTrials(),
                    (long) count * events * cfg.streamTrials(), c[0], c[1], m.ttfb.summary(), List.copyOf(ttfbP99s.get(p.name())),
                    m.perEvent.summary(), c[2]));
        }
    }

    private void heldScenario() throws Exception {
        int n = Math.min(cfg.heldStreams(), Peers.maxRelayedConnections());
        if (n < cfg.heldStreams()) {
            notes.add(String.format(Locale.ROOT, "open streams held: %d instead of %d, because a process may open at "
                    + "most %d files here (hard limit, not raisable without CAP_SYS_RESOURCE) and a relayed stream "
                    + "holds two sockets in the peer", n, cfg.heldStreams(), Procfs.maxOpenFilesHard()));
            log(notes.get(notes.size() - 1));
        }
        for (Peer p : peers) {
            if (p.name().equals(Peers.DIRECT)) {
                continue;
            }
            double rssBefore = rssMb(p);
            long baseline = Math.max(0, MockStats.get(mock.port(), "active_streams"));
            StreamSet set = client.streams(addr(p), Requests.stream(p.port(), 1_000_000, 1000, 0), n,
                    cfg.heldOpenPerSecond(), false, true);
            long deadline = System.nanoTime() + (long) ((n / (double) cfg.heldOpenPerSecond() + 15) * 1e9);
            double peak = rssBefore;
            while (System.nanoTime() < deadline) {
                if (set.establishedNow() + set.errorsNow() >= n) {
                    break;
                }
                peak = Math.max(peak, rssMb(p));
                ProcessService.sleep(100);
            }
            long holdEnd = System.nanoTime() + (long) (cfg.holdSeconds() * 1e9);
            while (System.nanoTime() < holdEnd) {
                peak = Math.max(peak, rssMb(p));
                ProcessService.sleep(250);
            }
            peak = Math.max(peak, rssMb(p));
            double heap = heapAfterGcMb(p);
            long established = set.establishedNow();
            long receiving = set.receivingNow();
            long errors = set.errorsNow();
            set.closeAll();
            long closedAt = System.nanoTime();
            double closedSeconds = Double.NaN;
            long limit = closedAt + TimeUnit.SECONDS.toNanos(10);
            while (System.nanoTime() < limit) {
                long active = MockStats.get(mock.port(), "active_streams");
                if (active >= 0 && active <= baseline) {
                    closedSeconds = (System.nanoTime() - closedAt) / 1e9;
                    break;
                }
                ProcessService.sleep(20);
            }
            try {
                await(set.ended(), 10);
            } catch (TimeoutException e) {
                notes.add("held streams on " + p.name() + ": some client connections did not close within 10 s");
            }
            held.add(new HeldRow(p.name(), n, established, receiving, errors, rssBefore, peak, heap, closedSeconds,
                    cfg.holdSeconds()));
            log(String.format(Locale.ROOT, "%-7s %d/%d established, %d receiving, %d errors, RSS %.0f -> peak %.0f MB, "
                            + "heap after GC %s MB, upstream closed after %s s", p.name(), established, n, receiving, errors,
                    rssBefore, peak, ReportWriter.f(heap, 1), ReportWriter.f(closedSeconds, 2)));
            // Let the peer settle (closed sockets, freed buffers) before the next one.
            ProcessService.sleep(500);
        }
    }

    private void slowReaderScenario() throws Exception {
        for (Peer p : peers) {
            if (!cfg.slowReaderPeers().contains(p.name())) {
                continue;
            }
            Map<String, Long> before = MockStats.fetch(mock.port());
            List<Double> samples = new ArrayList<>();
            long bytes = 0;
            long startNanos;
            long endNanos;
            try (SocketChannel ch = SocketChannel.open()) {
                ch.setOption(StandardSocketOptions.SO_RCVBUF, 8192);
                ch.connect(addr(p));
                ch.configureBlocking(false);
                ByteBuffer req = ByteBuffer.wrap(Requests.text(p.port(), Requests.STREAM_BODY,
                        "X-Mock-Events: 10000000\r\nX-Mock-Interval-Ms: 1\r\nX-Mock-Pad: 4096\r\n")
                        .getBytes(StandardCharsets.US_ASCII));
                while (req.hasRemaining()) {
                    ch.write(req);
                }
                ByteBuffer buf = ByteBuffer.allocateDirect(1024);
                startNanos = System.nanoTime();
                long end = startNanos + (long) (cfg.slowReaderSeconds() * 1e9);
                long tick = startNanos;
                int ticks = 0;
                samples.add(rssMb(p));
                boolean eof = false;
                while (System.nanoTime() < end && !eof) {
                    buf.clear();
                    while (buf.hasRemaining()) {
                        int n = ch.read(buf);
                        if (n < 0) {
                            eof = true;
                            notes.add("slow reader via " + p.name() + ": the stream ended early");
                            break;
                        }
                        if (n == 0) {
                            break;
                        }
                        bytes += n;
                    }
                    if (++ticks % 5 == 0) {
                        samples.add(rssMb(p));
                    }
                    tick += TimeUnit.MILLISECONDS.toNanos(100);
                    sleepUntil(tick);
                }
                endNanos = System.nanoTime();
                samples.add(rssMb(p));
            }
            ProcessService.sleep(300);
            Map<String, Long> after = MockStats.fetch(mock.port());
            double secs = (endNanos - startNanos) / 1e9;
            long sent = after.getOrDefault("events_sent", 0L) - before.getOrDefault("events_sent", 0L);
            long skippedEv = after.getOrDefault("events_skipped", 0L) - before.getOrDefault("events_skipped", 0L);
            double max = samples.stream().mapToDouble(Double::doubleValue).max().orElse(Double.NaN);
            slow.add(new SlowReaderRow(p.name(), secs, bytes, bytes / 1000.0 / secs, samples.get(0),
                    samples.get(samples.size() - 1), max, sent, skippedEv, samples));
            log(String.format(Locale.ROOT, "slow reader via %-7s %.1f KB/s for %.0f s, RSS %.1f -> %.1f MB (max %.1f), "
                            + "mock sent %d events, skipped %d", p.name(), bytes / 1000.0 / secs, secs, samples.get(0),
                    samples.get(samples.size() - 1), max, sent, skippedEv));
        }
    }

    /**
     * Large non-streaming answers, the shape of a batch {@code /v1/embeddings} answer (megabytes of
     * JSON numbers), through every peer: per trial, {@code largeAnswers} answers of
     * {@code largeAnswerBytes} one after the other on one keep-alive connection, peers rotated each
     * trial. Every other row's answer is 600 bytes or an SSE event, and a 32 MiB answer once took
     * the proxy 185 ms against Nginx's 26 ms (its usage scanner crossed every byte one at a time)
     * without any of them showing it.
     */
    private void largeAnswerScenario() throws Exception {
        long size = cfg.largeAnswerBytes();
        int count = cfg.largeAnswers();
        ByteBuffer readBuffer = ByteBuffer.allocateDirect(LargeAnswerClient.READ_BUFFER_BYTES);
        List<Peer> ready = new ArrayList<>();
        for (Peer p : peers) {
            if (warmLargeAnswers(p, size, readBuffer)) {
                ready.add(p);
            }
        }
        Map<String, LatencyRecorder> times = new HashMap<>();
        Map<String, List<Double>> trialMeans = new HashMap<>();
        Map<String, Double> cpuMs = new HashMap<>();
        Map<String, Integer> errors = new HashMap<>();
        for (int trial = 1; trial <= cfg.trials(); trial++) {
            for (Peer p : rotated(ready, trial - 1)) {
                String la = Procfs.loadavg();
                Map<Long, Long> j0 = Procfs.compilerRuntimeNanosByThread(p.pid());
                long w0 = System.nanoTime();
                LargeTrial t;
                try {
                    t = largeAnswerTrial(p, size, count, readBuffer);
                } catch (IOException e) {
                    errors.merge(p.name(), 1, Integer::sum);
                    String line = String.format(Locale.ROOT, "large answers, trial %d via %s failed: %s", trial,
                            p.name(), e.getMessage());
                    notes.add(line);
                    log(line);
                    continue;
                }
                double wall = (System.nanoTime() - w0) / 1e9;
                LatencySummary s = t.times().summary();
                times.computeIfAbsent(p.name(), x -> new LatencyRecorder()).addAll(t.times());
                trialMeans.computeIfAbsent(p.name(), x -> new ArrayList<>()).add(s.meanMs());
                cpuMs.merge(p.name(), t.cpuMs(), Double::sum);
                runs.add(new RunRecord("large answers", p.name(), trial, 1, wall, count / wall, count, 0, s.p50Ms(),
                        s.p99Ms(), t.cpuMs() / 1000 / wall, la));
                double jitShare = compilerNanosShareSince(p, j0, w0);
                String jit = Peers.isProxy(p.name()) && p.pid() > 0
                        ? String.format(Locale.ROOT, "  JIT compilers %.1f %%", 100 * jitShare) : "";
                log(String.format(Locale.ROOT, "large trial %d, %d × %s, %-11s mean %.1f  p50 %.1f  max %.1f ms  "
                        + "CPU %s ms per answer%s", trial, count, ReportWriter.bytes(size), p.name(), s.meanMs(),
                        s.p50Ms(), s.maxMs(), ReportWriter.f(t.cpuMs() / count, 2), jit));
            }
        }
        for (Peer p : peers) {
            LatencyRecorder r = times.get(p.name());
            int failed = errors.getOrDefault(p.name(), 0);
            if (r == null) {
                if (failed > 0) {
                    large.add(new LargeAnswerRow(p.name(), size, count, 0, 0, failed, List.of(), Double.NaN,
                            Double.NaN, Double.NaN, Double.NaN, Double.NaN));
                }
                continue;
            }
            LatencySummary s = r.summary();
            large.add(new LargeAnswerRow(p.name(), size, count, trialMeans.get(p.name()).size(), s.count(), failed,
                    trialMeans.get(p.name()), s.meanMs(), s.p50Ms(), s.maxMs(), cpuMs.get(p.name()) / s.count(),
                    size / (s.meanMs() / 1000) / 1e6));
        }
    }

    /** The answers' times and the peer's CPU time during them (NaN for direct), of one trial. */
    record LargeTrial(LatencyRecorder times, double cpuMs) {
    }

    /**
     * {@code count} answers on one new connection, each timed from the request's first byte sent
     * to the answer's last byte read.
     */
    private LargeTrial largeAnswerTrial(Peer p, long size, int count, ByteBuffer readBuffer) throws IOException {
        LatencyRecorder times = new LatencyRecorder(count);
        try (LargeAnswerClient c = new LargeAnswerClient(addr(p), Requests.embeddings(p.port(), size), readBuffer,
                LARGE_ANSWER_TIMEOUT_MILLIS)) {
            // Nginx's worker is its master's child: the tree counts it (the master does nothing meanwhile).
            Map<Long, Long> r0 = Procfs.runtimeNanosByThread(p.pid());
            long c0 = Procfs.cpuTicksTree(p.pid());
            for (int i = 0; i < count; i++) {
                long t0 = System.nanoTime();
                long got = c.exchange();
                times.record(System.nanoTime() - t0);
                if (got != size) {
                    throw new IOException("an answer of " + got + " bytes where " + size + " were asked for");
                }
            }
            Map<Long, Long> r1 = Procfs.runtimeNanosByThread(p.pid());
            long c1 = Procfs.cpuTicksTree(p.pid());
            // A quick trial uses ~20 ms of the peer's CPU: two 10-ms ticks cannot tell 2 ms an answer from 4.
            double cpuMs = p.pid() <= 0 ? Double.NaN : !r0.isEmpty() && !r1.isEmpty()
                    ? Procfs.runtimeNanosBetween(r0, r1) / 1e6 : (c1 - c0) * 1000.0 / Procfs.TICKS_PER_SECOND;
            return new LargeTrial(times, cpuMs);
        }
    }

    /**
     * Unmeasured answers of the scenario's size through one peer: at least
     * {@value #LARGE_WARM_ROUNDS} rounds of {@link #largeWarmRound} answers, and for our proxy
     * more until its JIT compilers used at most {@value #QUIET_COMPILER_SHARE} of two rounds in a
     * row (C2 works in spurts; at most {@value #LARGE_MAX_WARM_ROUNDS} rounds). The closed-loop
     * warm-up compiled the relay for 600-byte answers; a large one runs the usage scanner's skip
     * over arrays and the write path's waits for a writable socket far more often, and C2
     * compiles those at first. The mock, too, builds a size's body on its first request. False
     * (noted) when the peer could not answer.
     */
    private boolean warmLargeAnswers(Peer p, long size, ByteBuffer readBuffer) {
        boolean jvm = Peers.isProxy(p.name());
        int perRound = largeWarmRound(size);
        int rounds = 0;
        int quiet = 0;
        double share = 1;
        try {
            while (rounds < LARGE_WARM_ROUNDS || (jvm && quiet < 2 && rounds < LARGE_MAX_WARM_ROUNDS)) {
                Map<Long, Long> c0 = Procfs.compilerRuntimeNanosByThread(p.pid());
                long t0 = System.nanoTime();
                largeAnswerTrial(p, size, perRound, readBuffer);
                share = compilerNanosShareSince(p, c0, t0);
                quiet = share <= QUIET_COMPILER_SHARE ? quiet + 1 : 0;
                rounds++;
            }
        } catch (IOException e) {
            String line = "large answers via " + p.name() + " skipped: the warm-up failed: " + e.getMessage();
            notes.add(line);
            log(line);
            return false;
        }
        if (jvm && p.pid() > 0) {
            String line = String.format(Locale.ROOT, "large-answer warm-up of %s: %d answers of %s, JIT compilers "
                    + "%.1f %% of the last %d", p.name(), rounds * perRound, ReportWriter.bytes(size), 100 * share,
                    perRound);
            log(line);
            notes.add(line);
        }
        return true;
    }

    /**
     * Answers per warm-up round: {@value #LARGE_WARM_ROUND_BYTES} bytes' worth, within
     * [{@value #LARGE_WARM_ANSWERS}, {@value #LARGE_MAX_WARM_ANSWERS}], so that a round of small
     * answers still lasts long enough for C2's spurts to show in its share.
     */
    static int largeWarmRound(long size) {
        long n = (LARGE_WARM_ROUND_BYTES + size - 1) / size;
        return (int) Math.max(LARGE_WARM_ANSWERS, Math.min(LARGE_MAX_WARM_ANSWERS, n));
    }

    /**
     * The share of the time since {@code startNanos} that the peer's JIT compiler threads used,
     * from their run time in ns: a round of a few tens of ms is a few 10-ms ticks at most.
     */
    private static double compilerNanosShareSince(Peer p, Map<Long, Long> start, long startNanos) {
        return Procfs.runtimeNanosBetween(start, Procfs.compilerRuntimeNanosByThread(p.pid()))
                / (double) Math.max(1, System.nanoTime() - startNanos);
    }

    static final int LARGE_WARM_ANSWERS = 10;
    static final int LARGE_MAX_WARM_ANSWERS = 64;
    static final long LARGE_WARM_ROUND_BYTES = 256L * 1024 * 1024;
    static final int LARGE_WARM_ROUNDS = 3;
    static final int LARGE_MAX_WARM_ROUNDS = 20;
    /** 32 MiB took the proxy 185 ms when it was slow; a minute means something is stuck. */
    static final long LARGE_ANSWER_TIMEOUT_MILLIS = 60_000;

    /**
     * JFR recordings of our proxy under non-streaming and streaming load. Starting a recording
     * makes the JVM recompile for a few seconds, so each recording first runs the same load
     * unmeasured and only the window after it is summarised.
     */
    private void profile() throws Exception {
        Peer p = peers.stream().filter(x -> x.name().equals(Peers.PROXY)).findFirst().orElse(null);
        if (p == null || p.pid() <= 0) {
            notes.add("no JFR profile: the proxy did not run as its own process");
            return;
        }
        Path dir = cfg.outDir().resolve("profile");
        Files.createDirectories(dir);
        double secs = cfg.profileSeconds();
        Path f1 = dir.resolve("proxy-nonstream.jfr");
        Tools.Result started = JfrProfile.start(p.pid(), "bench-nonstream", f1);
        if (started.code() != 0) {
            notes.add("no JFR profile: jcmd JFR.start failed: " + started.output());
            return;
        }
        log("== JFR profile of the proxy, non-stream, 64 connections, " + secs + " s (after " + secs + " s unrecorded)");
        closedRun(p, 64, 0, secs);
        java.time.Instant from = java.time.Instant.now();
        ClosedOutcome o = closedRun(p, 64, 0, secs);
        java.time.Instant to = java.time.Instant.now();
        JfrProfile.stop(p.pid(), "bench-nonstream");
        profiles.add(JfrProfile.summarize(f1, "non-stream, 64 connections, closed loop", secs,
                String.format(Locale.ROOT, "Load during the summarised window: %.0f req/s (JFR on).",
                        o.result().throughput()), from, to));

        Path f2 = dir.resolve("proxy-stream.jfr");
        JfrProfile.start(p.pid(), "bench-stream", f2);
        int events = (int) Math.max(4, secs * 1000 / 25);
        log("== JFR profile of the proxy, 200 SSE streams, " + events + " events each (twice, the first unrecorded)");
        StreamStats s = null;
        java.time.Instant sFrom = null;
        double sSecs = 0;
        for (int round = 0; round < 2; round++) {
            if (round == 1) {
                sFrom = java.time.Instant.now();
            }
            long s0 = System.nanoTime();
            StreamSet set = client.streams(addr(p), Requests.stream(p.port(), events, 25, 0), 200, 5000, false, false);
            try {
                s = await(set.ended(), secs + 20);
            } catch (TimeoutException e) {
                set.closeAll();
                s = set.statsNow();
            }
            sSecs = (System.nanoTime() - s0) / 1e9;
        }
        java.time.Instant sTo = java.time.Instant.now();
        JfrProfile.stop(p.pid(), "bench-stream");
        profiles.add(JfrProfile.summarize(f2, "streaming, 200 SSE streams, one event per 25 ms each", sSecs,
                String.format(Locale.ROOT, "Load during the summarised window: %d events relayed in %.1f s (%.0f "
                        + "events/s, JFR on).", s.events, sSecs, s.events / sSecs), sFrom, sTo));
    }

    /**
     * {@code strace -c -f} on each peer process during a few seconds of non-streaming load, then
     * during 100 SSE streams: system calls per answered request and per relayed event.
     */
    private void syscallCounts() throws Exception {
        if (!Tools.has("strace")) {
            notes.add("no syscall counts: strace is not installed");
            return;
        }
        double secs = Math.max(1.0, Math.min(2.0, cfg.profileSeconds()));
        log("== syscalls per request and per event (strace -c -f)");
        for (Peer p : peers) {
            if (p.pid() <= 0) {
                continue;
            }
            Path out = work.resolve("strace-" + p.name() + ".txt");
            Process st = strace(p, out);
            if (st == null) {
                continue;
            }
            long requests = closedRun(p, 64, 0, secs).result().ok();
            stop(st);
            Results.SyscallRow row = parseStrace(p.name(), "non-stream, per request",
                    Files.exists(out) ? Files.readString(out) : "", requests);
            syscalls.add(row);
            log(String.format(Locale.ROOT, "%-7s %.2f syscalls per request over %d requests", p.name(), row.perRequest(),
                    requests));
        }
        for (Peer p : peers) {
            if (p.pid() <= 0) {
                continue;
            }
            Path out = work.resolve("strace-stream-" + p.name() + ".txt");
            Process st = strace(p, out);
            if (st == null) {
                continue;
            }
            StreamSet set = client.streams(addr(p), Requests.stream(p.port(), 40, 25, 0), 100, 5000, false, false);
            StreamStats s;
            try {
                s = await(set.ended(), 20);
            } catch (TimeoutException e) {
                set.closeAll();
                s = set.statsNow();
            }
            stop(st);
            Results.SyscallRow row = parseStrace(p.name(), "100 SSE streams, per event",
                    Files.exists(out) ? Files.readString(out) : "", s.events);
            syscalls.add(row);
            log(String.format(Locale.ROOT, "%-7s %.2f syscalls per relayed event over %d events", p.name(),
                    row.perRequest(), s.events));
        }
    }

    private Process strace(Peer p, Path out) throws IOException {
        List<String> cmd = new ArrayList<>(List.of("strace", "-c", "-f", "-o", out.toString()));
        List<Long> pids = new ArrayList<>();
        pids.add(p.pid());
        pids.addAll(Procfs.descendants(p.pid()));
        for (long pid : pids) {
            cmd.add("-p");
            cmd.add(Long.toString(pid));
        }
        Process st = new ProcessBuilder(cmd).redirectErrorStream(true)
                .redirectOutput(work.resolve(out.getFileName() + ".log").toFile()).start();
        ProcessService.sleep(800);
        if (!st.isAlive()) {
            notes.add("no syscall counts for " + p.name() + ": strace exited with " + st.exitValue());
            return null;
        }
        return st;
    }

    private static void stop(Process st) throws InterruptedException {
        st.destroy();
        if (!st.waitFor(20, TimeUnit.SECONDS)) {
            st.destroyForcibly();
        }
    }

    /**
     * Attribution, measured right after the proxy as shipped, same load: the same jar with
     * {@code ACCESS_LOG_CONSOLE=false} (access lines to the file only: the logging work the Nginx
     * peer does), and in full mode also with every line on the console as well (what the proxy did
     * before the console's cap, {@code ACCESS_LOG_CONSOLE_RATE=0}) and with the access log off
     * altogether (its own logback.xml with the {@code megallm.access} logger at OFF, passed as
     * {@code -Dlogback.configurationFile}).
     */
    private void accessLogWhatIf() throws Exception {
        Peer shipped = peers.stream().filter(x -> x.name().equals(Peers.PROXY)).findFirst().orElse(null);
        if (shipped == null || shipped.pid() <= 0 || cfg.proxyJar() == null) {
            return;
        }
        record Variant(String name, String label, List<String> jvmOptions, Map<String, String> env) {
        }
        List<Variant> variants = new ArrayList<>();
        variants.add(new Variant("proxy, file only", "proxy, access log to the file only (ACCESS_LOG_CONSOLE=false)",
                cfg.proxyJvmOptions(), Map.of("ACCESS_LOG_CONSOLE", "false")));
        if (cfg.mode().equals("full")) {
            variants.add(new Variant("proxy, console every line",
                    "proxy, every access line on the console too (ACCESS_LOG_CONSOLE_RATE=0)",
                    cfg.proxyJvmOptions(), Map.of("ACCESS_LOG_CONSOLE_RATE", "0")));
            Path conf = accessLogOffConfig();
            if (conf != null) {
                List<String> opts = new ArrayList<>(cfg.proxyJvmOptions());
                opts.add("-Dlogback.configurationFile=" + conf.toAbsolutePath());
                variants.add(new Variant("proxy, access log off",
                        "proxy, access log off (-Dlogback.configurationFile, megallm.access OFF)", opts, Map.of()));
            }
        }
        log("== what-if: the proxy's access log to the file only" + (variants.size() > 1
                ? ", to the console line for line, and off" : ""));
        List<Peer> started = new ArrayList<>();
        List<String> labels = new ArrayList<>();
        try {
            for (Variant v : variants) {
                Peer p;
                try {
                    p = Peers.proxyProcess(cfg.proxyJar(), v.jvmOptions(), v.env(),
                            work.resolve("what-if-" + started.size()), pin, mock.port());
                } catch (IOException e) {
                    notes.add("no access-log what-if (" + v.name() + "): " + e.getMessage());
                    continue;
                }
                Peer named = new Peer(v.name(), p.description(), p.port(), p.service());
                started.add(named);
                labels.add(v.label());
                warmPeer(named, Math.min(10, cfg.peerWarmupSeconds()), true);
            }
            double secs = Math.max(1.0, cfg.measureSeconds());
            List<Peer> measured = new ArrayList<>(List.of(shipped));
            measured.addAll(started);
            for (int i = 0; i < measured.size(); i++) {
                Peer p = measured.get(i);
                ClosedOutcome o = closedRun(p, 64, cfg.warmupSeconds(), secs);
                LatencySummary l = o.result().latencies().summary();
                double cpuUs = o.peerCpuSeconds() * 1e6 / Math.max(1, o.result().ok());
                whatIf.add(new Results.WhatIfRow(i == 0 ? "proxy as shipped (access log to file and console)"
                        : labels.get(i - 1), 64, o.result().throughput(), l.p50Ms(), l.p99Ms(), cpuUs));
                log(String.format(Locale.ROOT, "%-22s %8.0f req/s  p99 %.2f ms  %.1f µs CPU/request", p.name(),
                        o.result().throughput(), l.p99Ms(), cpuUs));
            }
        } finally {
            for (Peer p : started) {
                p.service().close();
            }
        }
    }

    /** The proxy jar's logback.xml with the {@code megallm.access} logger at OFF, or null (noted). */
    private Path accessLogOffConfig() throws IOException {
        String xml;
        try (java.util.zip.ZipFile zip = new java.util.zip.ZipFile(cfg.proxyJar().toFile())) {
            java.util.zip.ZipEntry e = zip.getEntry("logback.xml");
            if (e == null) {
                notes.add("no access-log-off what-if: the proxy jar has no logback.xml");
                return null;
            }
            xml = new String(zip.getInputStream(e).readAllBytes(), StandardCharsets.UTF_8);
        }
        String off = xml.replaceFirst("(<logger\\s+name=\"megallm\\.access\"\\s+level=\")[A-Za-z]+(\")", "$1OFF$2");
        if (off.equals(xml)) {
            notes.add("no access-log-off what-if: no megallm.access logger found in the proxy's logback.xml");
            return null;
        }
        Path conf = work.resolve("logback-no-access-log.xml");
        Files.writeString(conf, off);
        return conf;
    }

    /** Reads the table {@code strace -c} prints. */
    static Results.SyscallRow parseStrace(String peer, String load, String text, long requests) {
        List<Results.SyscallEntry> entries = new ArrayList<>();
        long total = 0;
        for (String line : text.split("\n")) {
            String[] f = line.trim().split("\\s+");
            if (f.length < 5 || f[0].startsWith("%") || f[0].startsWith("-")) {
                continue;
            }
            String name = f[f.length - 1];
            long calls;
            try {
                Double.parseDouble(f[0]);
                calls = Long.parseLong(f[3]);
            } catch (NumberFormatException e) {
                continue;
            }
            if (name.equals("total")) {
                total = calls;
            } else {
                entries.add(new Results.SyscallEntry(name, requests > 0 ? calls / (double) requests : Double.NaN));
            }
        }
        entries.sort(Comparator.comparingDouble(Results.SyscallEntry::perRequest).reversed());
        List<Results.SyscallEntry> top = entries.subList(0, Math.min(6, entries.size()));
        String note = requests <= 0 ? "no request answered while traced" : (total == 0 ? "strace printed no table" : "");
        return new Results.SyscallRow(peer, load, requests, requests > 0 ? total / (double) requests : Double.NaN,
                new ArrayList<>(top), note);
    }

    // ---- helpers ----------------------------------------------------------------------------

    private double rssMb(Peer p) {
        if (p.pid() <= 0) {
            return Double.NaN;
        }
        long kb = Procfs.rssKbTree(p.pid());
        return kb < 0 ? Double.NaN : kb / 1024.0;
    }

    /** Heap in use after a full GC, for the proxy's JVM; NaN for other peers or when jcmd/jstat fail. */
    private double heapAfterGcMb(Peer p) {
        if (!Peers.isProxy(p.name()) || p.pid() <= 0) {
            return Double.NaN;
        }
        Tools.run(List.of(Tools.jdkTool("jcmd"), Long.toString(p.pid()), "GC.run"), 30);
        Tools.Result r = Tools.run(List.of(Tools.jdkTool("jstat"), "-gc", Long.toString(p.pid())), 30);
        return parseJstatUsedMb(r.output());
    }

    /** Sums the used columns (S0U S1U EU OU) of {@code jstat -gc} output, in MB. */
    public static double parseJstatUsedMb(String output) {
        String[] lines = output.trim().split("\n");
        if (lines.length < 2) {
            return Double.NaN;
        }
        String[] head = lines[0].trim().split("\\s+");
        String[] vals = lines[1].trim().split("\\s+");
        double kb = 0;
        boolean any = false;
        for (int i = 0; i < head.length && i < vals.length; i++) {
            if (head[i].equals("S0U") || head[i].equals("S1U") || head[i].equals("EU") || head[i].equals("OU")) {
                try {
                    kb += Double.parseDouble(vals[i]);
                    any = true;
                } catch (NumberFormatException e) {
                    return Double.NaN;
                }
            }
        }
        return any ? kb / 1024.0 : Double.NaN;
    }

    static void deleteTree(Path root) {
        if (root == null || !Files.exists(root)) {
            return;
        }
        try (var paths = Files.walk(root)) {
            paths.sorted(Comparator.reverseOrder()).forEach(p -> {
                try {
                    Files.deleteIfExists(p);
                } catch (IOException e) {
                    // best effort
                }
            });
        } catch (IOException e) {
            // best effort
        }
    }

    /** This JVM's class path with absolute entries (the mock runs in another directory). */
    static String absoluteClasspath() {
        StringBuilder b = new StringBuilder();
        for (String e : System.getProperty("java.class.path").split(java.io.File.pathSeparator)) {
            if (!e.isEmpty()) {
                b.append(b.length() == 0 ? "" : java.io.File.pathSeparator).append(Path.of(e).toAbsolutePath());
            }
        }
        return b.toString();
    }

    static <T> List<T> rotated(List<T> list, int by) {
        List<T> out = new ArrayList<>(list.size());
        for (int i = 0; i < list.size(); i++) {
            out.add(list.get((i + by) % list.size()));
        }
        return out;
    }

    private static InetSocketAddress addr(Peer p) {
        return new InetSocketAddress("127.0.0.1", p.port());
    }

    private static <T> T await(CompletableFuture<T> f, double seconds) throws Exception {
        try {
            return f.get((long) (seconds * 1000), TimeUnit.MILLISECONDS);
        } catch (java.util.concurrent.ExecutionException e) {
            throw (e.getCause() instanceof Exception ex) ? ex : e;
        }
    }

    private static void sleepUntil(long nanoTime) {
        long left = nanoTime - System.nanoTime();
        if (left > 0) {
            try {
                TimeUnit.NANOSECONDS.sleep(left);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted", e);
            }
        }
    }

    private double seconds() {
        return (System.nanoTime() - t0) / 1e9;
    }

    private void log(String line) {
        out.printf(Locale.ROOT, "[%5.1fs] %s%n", seconds(), line);
        out.flush();
    }

    private synchronized void closeAll() {
        for (int i = peers.size() - 1; i >= 0; i--) {
            Service s = peers.get(i).service();
            if (s != null) {
                try {
                    s.close();
                } catch (RuntimeException e) {
                    // best effort
                }
            }
        }
        if (client != null) {
            client.close();
            client = null;
        }
        if (mock != null) {
            mock.close();
        }
    }

    private Results results(String startedAt, int cores) {
        // The shaded jar keeps one io.netty.versions.properties; any artifact in it has the release's version.
        String netty = io.netty.util.Version.identify().values().stream().map(io.netty.util.Version::artifactVersion)
                .findFirst().orElse("?");
        Results.MachineInfo machine = new Results.MachineInfo(cores, Procfs.cpuModel(), Procfs.memTotalMb(),
                Procfs.kernel(), System.getProperty("java.vm.name") + " " + System.getProperty("java.runtime.version"),
                io.megallm.proxy.transport.Transport.best().name(), netty, Peers.nginxVersion(),
                Peers.haproxyVersion(), wakeup.sameCoreUs(), wakeup.crossCoreUs(), newFileStart, newFileEnd);
        String clientText = "the harness's own Netty HTTP/1.1 client (keep-alive, one event-loop thread, "
                + machine.nettyTransport() + "; requests pre-encoded, answers parsed without allocation), closed loop "
                + "at " + cfg.connectionLevels() + " connections and open loop at a fixed rate; SSE streams one "
                + "connection each. Loopback only (127.0.0.1).";
        peerInfo.sort(Comparator.comparingInt(x -> BenchConfig.ALL_PEERS.indexOf(x.name())));
        openLoop.sort(Comparator.comparingInt(x -> BenchConfig.ALL_PEERS.indexOf(x.peer())));
        return new Results(LocalDate.now().format(DateTimeFormatter.ISO_LOCAL_DATE), cfg.mode(), startedAt, seconds(),
                machine, pin.describe(), clientText, peerInfo, skipped, cfg, nonStream, wrk, openLoop, streaming, ttfb,
                held, slow, large,
                load, runs, profiles, syscalls, whatIf, notes);
    }
}
