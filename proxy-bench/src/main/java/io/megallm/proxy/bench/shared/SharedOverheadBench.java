package io.megallm.proxy.bench.shared;

import io.lettuce.core.RedisClient;
import io.lettuce.core.api.StatefulRedisConnection;
import io.megallm.proxy.bench.harness.Json;
import io.megallm.proxy.bench.harness.LatencyRecorder;
import io.megallm.proxy.bench.harness.LatencySummary;
import io.megallm.proxy.bench.harness.LoadClient;
import io.megallm.proxy.bench.harness.LoadClient.LoadResult;
import io.megallm.proxy.bench.harness.Peers;
import io.megallm.proxy.bench.harness.Peers.Peer;
import io.megallm.proxy.bench.harness.Pinning;
import io.megallm.proxy.bench.harness.Requests;
import io.megallm.proxy.bench.harness.Service;
import io.megallm.proxy.server.shared.RedisKeyStates;

import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDate;
import java.time.ZonedDateTime;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * {@code bench --redis-overhead}: what sharing state through Redis costs one instance's request
 * path (contract §14 says nothing: it never waits on Redis). Two proxies of the same jar, same
 * client file (limits on, so that every request counts in the client's windows), same mock
 * upstream, the only difference REDIS_URL; closed-loop load on each in turn, alternating which goes
 * first, so that both meet the same machine. Their difference is set against the spread between
 * trials of the same proxy: the run's noise.
 */
public final class SharedOverheadBench {

    static final String USAGE = """
            usage: bench --redis-overhead [--proxy-jar PATH] [--trials N] [--seconds S] [--connections a,b] [--out DIR]
              --trials N        rounds over both proxies (default 5)
              --seconds S       measured seconds per run (default 10; 2 s of warm-up before each)
              --connections a,b closed-loop connection counts (default 16,64)
              --out DIR         report directory (default proxy-bench/results/<yyyy-MM-dd>-redis-overhead)
            """;

    static final String CLIENT = "sk-bench-client-key";

    public record Run(String proxy, int trial, int connections, double rps, long ok, long errors, double p50Ms,
                       double p99Ms) {
    }

    private SharedOverheadBench() {
    }

    public static int command(String[] args, Path defaultJar) throws Exception {
        Path jar = defaultJar;
        int trials = 5;
        double seconds = 10;
        List<Integer> connections = List.of(16, 64);
        Path out = null;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (i + 1 >= args.length) {
                System.err.print((a.startsWith("-h") || a.equals("--help") ? "" : a + " needs a value\n") + USAGE);
                return 2;
            }
            switch (a) {
                case "--proxy-jar" -> jar = Path.of(args[++i]);
                case "--trials" -> trials = Integer.parseInt(args[++i]);
                case "--seconds" -> seconds = Double.parseDouble(args[++i]);
                case "--connections" -> connections = Stream.of(args[++i].split(",")).map(Integer::parseInt).toList();
                case "--out" -> out = Path.of(args[++i]);
                default -> {
                    System.err.print("unknown option: " + a + "\n" + USAGE);
                    return 2;
                }
            }
        }
        if (!Files.isRegularFile(jar)) {
            System.err.println("proxy jar not found: " + jar);
            return 2;
        }
        if (out == null) {
            Path base = Files.isDirectory(Path.of("proxy-bench")) ? Path.of("proxy-bench", "results") : Path.of("results");
            out = base.resolve(LocalDate.now() + "-redis-overhead");
        }
        String command = ("java -jar proxy-bench/target/megallm-proxy-bench.jar bench --redis-overhead "
                + String.join(" ", args)).trim();
        run(jar, trials, seconds, connections, out, command, System.out);
        return 0;
    }

    static void run(Path jar, int trials, double seconds, List<Integer> levels, Path out, String command,
                    PrintStream log) throws Exception {
        Path work = Files.createTempDirectory("redis-overhead");
        Path clients = work.resolve("clients.txt");
        // Limits far above the load: never refused, but counted on every request (in Redis for one proxy).
        Files.writeString(clients, CLIENT + " name=bench rpm=1000000000 tpm=1000000000000 daily_tokens=1000000000000000\n");
        List<Service> started = new ArrayList<>();
        List<Run> runs = new ArrayList<>();
        long redisCommands;
        double wallSeconds;
        String usage;
        try (LoadClient client = new LoadClient()) {
            Service mock = Peers.mockInProcess();
            started.add(mock);
            Service redis = RedisServer.start(work.resolve("redis"));
            started.add(redis);
            Peer plain = Peers.proxyProcess(jar, List.of(), Map.of("PROXY_API_KEYS", "@" + clients), work.resolve("plain"),
                    Pinning.none(), mock.port());
            started.add(plain.service());
            Peer shared = Peers.proxyProcess(jar, List.of(), Map.of("PROXY_API_KEYS", "@" + clients,
                    "REDIS_URL", RedisServer.url(redis)), work.resolve("shared"), Pinning.none(), mock.port());
            started.add(shared.service());
            awaitShared(shared.port());
            Map<String, Peer> peers = new LinkedHashMap<>();
            peers.put("without REDIS_URL", plain);
            peers.put("with REDIS_URL", shared);
            log.println("redis overhead: mock " + mock.port() + ", redis " + redis.port() + ", proxies " + plain.port()
                    + " (plain) and " + shared.port() + " (REDIS_URL)");
            for (Peer p : peers.values()) {
                closed(client, p, 64, 3, 5); // warm-up: JIT, pools
            }
            long before = redisCalls(redis);
            long from = System.nanoTime();
            for (int trial = 1; trial <= trials; trial++) {
                for (int conns : levels) {
                    List<String> order = new ArrayList<>(peers.keySet());
                    if (trial % 2 == 0) {
                        java.util.Collections.reverse(order);
                    }
                    for (String name : order) {
                        LoadResult r = closed(client, peers.get(name), conns, 2, seconds);
                        LatencySummary s = r.latencies().summary();
                        runs.add(new Run(name, trial, conns, r.throughput(), r.ok(), r.errors(), s.p50Ms(), s.p99Ms()));
                        log.printf(Locale.ROOT, "  trial %d, %d connections, %s: %.0f req/s, p50 %.2f ms, p99 %.2f ms,"
                                + " %d errors%n", trial, conns, name, r.throughput(), s.p50Ms(), s.p99Ms(), r.errors());
                    }
                }
            }
            redisCommands = redisCalls(redis) - before;
            wallSeconds = (System.nanoTime() - from) / 1e9;
            usage = HttpClient.newHttpClient().send(HttpRequest.newBuilder(
                            URI.create("http://127.0.0.1:" + shared.port() + "/admin/usage")).build(),
                    HttpResponse.BodyHandlers.ofString()).body();
        } finally {
            for (int i = started.size() - 1; i >= 0; i--) {
                started.get(i).close();
            }
        }
        write(out, command, jar, trials, seconds, levels, runs, redisCommands, wallSeconds, usage);
        log.println("redis overhead: report in " + out.toAbsolutePath().normalize());
    }

    private static LoadResult closed(LoadClient client, Peer p, int conns, double warmup, double measure)
            throws Exception {
        long start = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(20);
        return client.closedLoop(new InetSocketAddress("127.0.0.1", p.port()), Requests.nonStream(p.port()), conns,
                start, (long) (warmup * 1e9), (long) (measure * 1e9)).get((long) (warmup + measure + 30), TimeUnit.SECONDS);
    }

    private static void awaitShared(int port) throws Exception {
        HttpClient http = HttpClient.newHttpClient();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
        while (System.nanoTime() < deadline) {
            String body = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/health")).build(),
                    HttpResponse.BodyHandlers.ofString()).body();
            if (body.contains("\"shared_state\":\"ok\"")) {
                return;
            }
            Thread.sleep(50);
        }
        throw new IllegalStateException("the proxy with REDIS_URL did not reach Redis within 15 s");
    }

    /** Commands Redis has run so far (INFO stats), to show that the shared proxy did talk to it. */
    private static long redisCalls(Service redis) {
        RedisKeyStates.useNioTransport();
        try (RedisClient c = RedisClient.create(RedisServer.url(redis));
             StatefulRedisConnection<String, String> conn = c.connect()) {
            for (String line : conn.sync().info("stats").split("\r?\n")) {
                if (line.startsWith("total_commands_processed:")) {
                    return Long.parseLong(line.substring(line.indexOf(':') + 1).strip());
                }
            }
            return -1;
        }
    }

    private static void write(Path out, String command, Path jar, int trials, double seconds, List<Integer> levels,
                              List<Run> runs, long redisCommands, double wallSeconds, String usage)
            throws Exception {
        Files.createDirectories(out);
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("date", ZonedDateTime.now().toString());
        json.put("command", command);
        json.put("jar", jar.toAbsolutePath().normalize().toString());
        json.put("runs", runs);
        json.put("redis_commands", redisCommands);
        Files.writeString(out.resolve("results.json"), Json.write(json), StandardCharsets.UTF_8);

        StringBuilder b = new StringBuilder();
        b.append("# One instance with and without `REDIS_URL`: `bench --redis-overhead`\n\n");
        b.append("Run ").append(ZonedDateTime.now()).append(" on ").append(Runtime.getRuntime().availableProcessors())
                .append(" cores, with\n\n    ").append(command).append("\n\n");
        b.append(String.format(Locale.ROOT, """
                Two proxies of `%s`, each its own process, in front of one mock upstream (in the bench's JVM, \
                answering a non-streaming chat at once, with a `usage`), the same client file (`rpm`, `tpm` and `daily_tokens` set far \
                above the load, so that every request is counted in the client's windows), the same settings; one \
                has `REDIS_URL` set to a local `redis-server`, so its key states, limit windows and usage go to \
                Redis. Closed-loop load (keep-alive connections, each sending its next request when the answer \
                ended) on one proxy at a time, %d trials, the order alternating per trial; each run %.0f s \
                measured after 2 s of warm-up. Both proxies and the load share the machine's cores.

                """, jar.getFileName(), trials, seconds));
        b.append("| connections | proxy | req/s, mean of trials | req/s, range over trials | p50 (median of trials) | p99 (median of trials) | p99 range | errors |\n");
        b.append("|---|---|---|---|---|---|---|---|\n");
        Map<String, double[]> means = new LinkedHashMap<>();
        for (int conns : levels) {
            for (String proxy : List.of("without REDIS_URL", "with REDIS_URL")) {
                List<Run> rs = runs.stream().filter(r -> r.connections() == conns && r.proxy().equals(proxy)).toList();
                double[] rps = rs.stream().mapToDouble(Run::rps).toArray();
                double[] p99 = rs.stream().mapToDouble(Run::p99Ms).sorted().toArray();
                double[] p50 = rs.stream().mapToDouble(Run::p50Ms).sorted().toArray();
                double mean = java.util.Arrays.stream(rps).average().orElse(Double.NaN);
                means.put(conns + proxy, new double[]{mean, median(p99), min(rps), max(rps), min(p99), max(p99)});
                b.append(String.format(Locale.ROOT, "| %d | %s | %.0f | %.0f – %.0f | %.2f ms | %.2f ms | %.2f – %.2f ms | %d |\n",
                        conns, proxy, mean, min(rps), max(rps), median(p50), median(p99), min(p99), max(p99),
                        rs.stream().mapToLong(Run::errors).sum()));
            }
        }
        b.append("\n## Difference against the noise\n\n");
        for (int conns : levels) {
            double[] off = means.get(conns + "without REDIS_URL");
            double[] on = means.get(conns + "with REDIS_URL");
            double diff = (on[0] - off[0]) / off[0] * 100;
            double noise = Math.max((off[3] - off[2]) / off[0], (on[3] - on[2]) / on[0]) * 100;
            double p99diff = (on[1] - off[1]) / off[1] * 100;
            b.append(String.format(Locale.ROOT, "- %d connections: throughput %+.1f %% with REDIS_URL (trials of one "
                            + "proxy spread over up to %.1f %%: %s); p99 %+.1f %% (%.2f against %.2f ms; ranges %.2f–%.2f "
                            + "and %.2f–%.2f ms)\n", conns, diff, noise, Math.abs(diff) <= noise ? "within the noise"
                            : "outside the noise", p99diff, on[1], off[1], on[4], on[5], off[4], off[5]));
        }
        long sharedRequests = runs.stream().filter(r -> r.proxy().equals("with REDIS_URL")).mapToLong(Run::ok).sum();
        b.append(String.format(Locale.ROOT, "\nRedis ran %d commands from the first trial to the last (%.0f s, both "
                + "proxies' turns and warm-ups: %.0f a second), while the proxy with REDIS_URL answered %d requests in "
                + "its measured time: the batches of limit windows and usage, never a command per request.\n",
                redisCommands, wallSeconds, redisCommands / Math.max(1e-9, wallSeconds), sharedRequests));
        b.append("\n`/admin/usage` of the proxy with REDIS_URL at the end:\n\n```json\n").append(usage).append("\n```\n");
        b.append("\nEvery run: `results.json`.\n");
        Files.writeString(out.resolve("REPORT.md"), b.toString(), StandardCharsets.UTF_8);
    }

    private static double median(double[] sorted) {
        return sorted.length == 0 ? Double.NaN : sorted[sorted.length / 2];
    }

    private static double min(double[] v) {
        return java.util.Arrays.stream(v).min().orElse(Double.NaN);
    }

    private static double max(double[] v) {
        return java.util.Arrays.stream(v).max().orElse(Double.NaN);
    }
}
