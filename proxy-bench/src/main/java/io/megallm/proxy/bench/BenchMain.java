package io.megallm.proxy.bench;

import io.megallm.proxy.bench.chaos.ChaosReport;
import io.megallm.proxy.bench.chaos.ChaosResults;
import io.megallm.proxy.bench.chaos.ChaosRun;
import io.megallm.proxy.bench.harness.BenchConfig;
import io.megallm.proxy.bench.harness.Harness;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDate;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * {@code java -jar megallm-proxy-bench.jar <command>}:
 * <ul>
 *   <li>{@code demo [--port N]}: the mock and the real proxy together, with throw-away keys;</li>
 *   <li>{@code mock [port] [events] [intervalMs] [threads]} (or just {@code [port] …}): the mock upstream;</li>
 *   <li>{@code bench --quick|--full [options]}: the load harness and its report;</li>
 *   <li>{@code jmh [JMH options]}: the JMH microbenchmarks (same as {@code org.openjdk.jmh.Main}).</li>
 * </ul>
 */
public final class BenchMain {

    static final String USAGE = """
            usage: java -jar proxy-bench/target/megallm-proxy-bench.jar <command>

              demo [--port N] [--mock-port N] [--proxy-jar PATH]
                  the mock upstream and megallm-proxy in front of it with throw-away demo keys, and the curl
                  lines to try; data/keys.txt is never touched; Ctrl-C stops both
              mock [port] [events] [intervalMs] [threads]
                  the mock MegaLLM upstream (defaults 9000 20 50 1); the first argument may also be the port
                  itself: `megallm-proxy-bench.jar 9000 20 100`
              bench --quick | --full [options]
                  the load harness: mock, direct, HAProxy (mode tcp), Nginx and megallm-proxy (JVM defaults,
                  and as the Docker image runs it: Temurin 25 with its JDK_JAVA_OPTIONS), side by side, with
                  the harness's own client and with wrk and h2load --h1 when installed;
                  writes proxy-bench/results/<date>/REPORT.md, results.json and PNG charts
                  --out DIR              report directory (default proxy-bench/results/<yyyy-MM-dd>)
                  --peers a,b,c          subset of direct,haproxy,nginx,proxy,proxy-image
                  --scenarios a,b,c      subset of closed,wrk,open,streams,ttfb,held,slow,large,profile
                                         (large: 32 MiB embeddings-shaped answers, 4 MiB in --quick)
                  --trials N             closed-loop trials per level and peer (stream trials at most N)
                  --proxy-jar PATH       megallm-proxy.jar (default proxy-server/target/megallm-proxy.jar)
                  --proxy-jvm-opts "..." JVM options of the proxy process (default: none, JVM ergonomics)
                  --no-pin               do not pin processes to cores with taskset
                  --no-profile           skip the profiling at the end (JFR, strace, access-log what-if)
                  --keep-work            keep the temp work directory (peer logs and configurations)
              bench --chaos [--minutes N] [options]
                  the chaos run: megallm-proxy.jar as a child process, thousands of well-behaved and hostile
                  clients (slowloris heads and bodies, 1-byte chunks, idle keep-alives, stalled readers,
                  clients that vanish, connect floods) and a misbehaving mock upstream, for N minutes
                  (default 2); writes proxy-bench/results/<date>-chaos/; exit code 1 when a check fails
                  --minutes N            length of the load phase (default 2)
                  --scale X              multiplies every pattern's rate (default 1)
                  --leak-level LEVEL     Netty leak detection of the proxy (default paranoid)
                  --out, --proxy-jar, --proxy-jvm-opts as above
              bench --keys [--minutes N] [--old-jar PATH] [--proxy-jar PATH] [--out DIR] [--keep-work]
                           [--instances N [--redis]]
                  pool efficiency: a rate-limited key pool (dead, flapping, an IP-wide 429 burst) under and over
                  its capacity; writes proxy-bench/results/<date>-keys/ (`bench --keys --help` for the rest);
                  --instances 3 --redis: three proxies, alone and sharing state through Redis, in one run
              bench --redis-overhead [--trials N] [--seconds S] [--connections a,b] [--proxy-jar PATH] [--out DIR]
                  one proxy with REDIS_URL against one without, same run: throughput and p99
              jmh [JMH options]
                  the microbenchmarks, e.g. `jmh -prof gc RelayChunk` (`jmh -h` lists JMH's options)
              jfr FILE.jfr
                  summarises a JFR recording of the proxy (threads, hot methods, allocation sites)
            """;

    private BenchMain() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length == 0 || Character.isDigit(args[0].charAt(0))) {
            MockUpstreamServer.main(args);
            return;
        }
        String command = args[0];
        String[] rest = Arrays.copyOfRange(args, 1, args.length);
        switch (command) {
            case "mock" -> MockUpstreamServer.main(rest);
            case "demo" -> System.exit(io.megallm.proxy.bench.demo.Demo.run(rest));
            case "bench" -> System.exit(bench(rest));
            case "jmh" -> org.openjdk.jmh.Main.main(rest);
            case "jfr" -> {
                if (rest.length != 1) {
                    System.err.print("jfr needs one recording file\n" + USAGE);
                    System.exit(2);
                }
                Path file = Path.of(rest[0]);
                StringBuilder b = new StringBuilder();
                io.megallm.proxy.bench.harness.ReportWriter.profile(b,
                        io.megallm.proxy.bench.harness.JfrProfile.summarize(file, file.getFileName().toString(),
                                Double.NaN, null));
                System.out.print(b);
            }
            case "-h", "--help", "help" -> System.out.print(USAGE);
            default -> {
                System.err.print("unknown command: " + command + "\n" + USAGE);
                System.exit(2);
            }
        }
    }

    static int bench(String[] args) throws Exception {
        System.setProperty("java.awt.headless", "true");
        if (Arrays.asList(args).contains("--chaos")) {
            return chaos(args);
        }
        BenchConfig cfg = null;
        Path out = null;
        Path jar = null;
        List<String> peers = null;
        List<String> jvmOpts = List.of();
        boolean pin = true;
        boolean profile = true;
        boolean keepWork = false;
        List<String> scenarios = null;
        int trials = 0;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            switch (a) {
                case "--quick" -> cfg = BenchConfig.quick();
                case "--full" -> cfg = BenchConfig.full();
                case "--keys" -> {
                    return io.megallm.proxy.bench.keys.KeysBench.command(Arrays.stream(args).filter(x -> !x.equals(a))
                            .toArray(String[]::new), findProxyJar());
                }
                case "--redis-overhead" -> {
                    return io.megallm.proxy.bench.shared.SharedOverheadBench.command(Arrays.stream(args)
                            .filter(x -> !x.equals(a)).toArray(String[]::new), findProxyJar());
                }
                case "--out" -> out = Path.of(value(args, ++i, a));
                case "--proxy-jar" -> jar = Path.of(value(args, ++i, a));
                case "--peers" -> peers = List.of(value(args, ++i, a).split(","));
                case "--proxy-jvm-opts" -> jvmOpts = List.of(value(args, ++i, a).trim().split("\\s+"));
                case "--no-pin" -> pin = false;
                case "--no-profile" -> profile = false;
                case "--keep-work" -> keepWork = true;
                case "--scenarios" -> scenarios = List.of(value(args, ++i, a).split(","));
                case "--trials" -> trials = Integer.parseInt(value(args, ++i, a));
                default -> {
                    System.err.print("unknown option: " + a + "\n" + USAGE);
                    return 2;
                }
            }
        }
        if (cfg == null) {
            System.err.print("bench needs --quick or --full\n" + USAGE);
            return 2;
        }
        if (scenarios != null) {
            for (String s : scenarios) {
                if (!BenchConfig.ALL_SCENARIOS.contains(s)) {
                    System.err.println("unknown scenario: " + s + " (known: " + BenchConfig.ALL_SCENARIOS + ")");
                    return 2;
                }
            }
            cfg = cfg.withScenarios(scenarios);
        }
        if (trials > 0) {
            cfg = cfg.withTrials(trials, Math.min(trials, cfg.streamTrials()));
        }
        if (peers != null) {
            for (String p : peers) {
                if (!BenchConfig.ALL_PEERS.contains(p)) {
                    System.err.println("unknown peer: " + p + " (known: " + BenchConfig.ALL_PEERS + ")");
                    return 2;
                }
            }
            cfg = cfg.withPeers(peers);
        }
        if (jar == null) {
            jar = findProxyJar();
        }
        if ((cfg.peers().contains("proxy") || cfg.peers().contains("proxy-image")) && (jar == null || !Files.isRegularFile(jar))) {
            System.err.println("megallm-proxy.jar not found (" + jar + "): build it first with "
                    + "`mvn -B -q -DskipTests install`, or pass --proxy-jar");
            return 2;
        }
        if (out == null) {
            Path base = Files.isDirectory(Path.of("proxy-bench")) ? Path.of("proxy-bench", "results") : Path.of("results");
            out = base.resolve(LocalDate.now().toString());
        }
        cfg = cfg.withOutDir(out).withProxyJar(jar).withProxyJvmOptions(jvmOpts.stream().filter(s -> !s.isEmpty())
                .toList()).withPin(pin).withProfile(profile).withKeepWork(keepWork);
        new Harness(cfg, System.out).run();
        return 0;
    }

    /** {@code bench --chaos [--minutes N] ...}: 0 when every check passed, 1 when one failed, 2 on bad usage. */
    static int chaos(String[] args) throws Exception {
        Path out = null;
        Path jar = null;
        double minutes = 2;
        double scale = 1;
        String leak = "paranoid";
        List<String> jvmOpts = List.of();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            switch (a) {
                case "--chaos" -> {
                }
                case "--minutes" -> minutes = Double.parseDouble(value(args, ++i, a));
                case "--scale" -> scale = Double.parseDouble(value(args, ++i, a));
                case "--leak-level" -> leak = value(args, ++i, a);
                case "--out" -> out = Path.of(value(args, ++i, a));
                case "--proxy-jar" -> jar = Path.of(value(args, ++i, a));
                case "--proxy-jvm-opts" -> jvmOpts = List.of(value(args, ++i, a).trim().split("\\s+"));
                default -> {
                    System.err.print("unknown option for --chaos: " + a + "\n" + USAGE);
                    return 2;
                }
            }
        }
        if (!(minutes > 0) || minutes > 24 * 60 || !(scale > 0)) {
            System.err.println("--minutes must be in (0, 1440] and --scale above 0");
            return 2;
        }
        if (jar == null) {
            jar = findProxyJar();
        }
        if (!Files.isRegularFile(jar)) {
            System.err.println("megallm-proxy.jar not found (" + jar + "): build it first with "
                    + "`mvn -B -q package -DskipTests`, or pass --proxy-jar");
            return 2;
        }
        if (out == null) {
            Path base = Files.isDirectory(Path.of("proxy-bench")) ? Path.of("proxy-bench", "results") : Path.of("results");
            out = base.resolve(LocalDate.now() + "-chaos");
        }
        ChaosRun.Settings s = ChaosRun.Settings.defaults(out, jar).withMinutes(minutes).withScale(scale)
                .withLeakLevel(leak).withJvmOptions(jvmOpts.stream().filter(x -> !x.isEmpty()).toList());
        ChaosResults r = new ChaosRun(s, System.out).run();
        System.out.println(r.passed() ? "chaos run: PASS" : "chaos run: FAIL (see " + out.resolve(ChaosReport.REPORT) + ")");
        return r.passed() ? 0 : 1;
    }

    private static String value(String[] args, int i, String option) {
        if (i >= args.length) {
            throw new IllegalArgumentException(option + " needs a value");
        }
        return args[i];
    }

    /** proxy-server/target/megallm-proxy.jar under the working directory, or next to this jar's module. */
    static Path findProxyJar() {
        List<Path> candidates = new ArrayList<>();
        candidates.add(Path.of("proxy-server", "target", "megallm-proxy.jar"));
        candidates.add(Path.of("..", "proxy-server", "target", "megallm-proxy.jar"));
        try {
            Path self = Path.of(BenchMain.class.getProtectionDomain().getCodeSource().getLocation().toURI());
            // proxy-bench/target/megallm-proxy-bench.jar -> proxy-server/target/megallm-proxy.jar
            Path module = self.getParent() == null ? null : self.getParent().getParent();
            if (module != null && module.getParent() != null) {
                candidates.add(module.getParent().resolve("proxy-server/target/megallm-proxy.jar"));
            }
        } catch (Exception e) {
            // no code source: only the working-directory candidates
        }
        for (Path c : candidates) {
            if (Files.isRegularFile(c)) {
                return c.toAbsolutePath().normalize();
            }
        }
        return candidates.get(0).toAbsolutePath();
    }
}
