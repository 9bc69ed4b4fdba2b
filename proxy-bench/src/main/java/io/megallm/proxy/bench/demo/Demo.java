package io.megallm.proxy.bench.demo;

import io.megallm.proxy.bench.MockUpstreamServer;
import sun.misc.Signal;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * {@code demo}: the real proxy (its jar, as a child process) in front of the bundled mock upstream,
 * with throw-away keys in a temporary directory. It reads and writes nothing of the checkout: no
 * {@code data/keys.txt}, no {@code logs/}, no {@code .env} or {@code config/} (the proxy runs in
 * the temporary directory). Ctrl-C stops both and removes the directory.
 */
public final class Demo {

    /** Two keys the mock accepts and one it refuses with 401, so that a failover shows in the log. */
    static final List<String> KEYS = List.of("sk-mega-demo-key-one-000001", "sk-mega-demo-key-two-000002",
            "sk-bad-demo-key-three-000003");

    /** Settings of the operator's environment that would make the demo something else. */
    private static final List<String> NOT_PASSED_ON = List.of("PROXY_API_KEYS", "ADMIN_TOKEN", "REDIS_URL",
            "CONFIG_FILE", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy");

    static final String USAGE = """
            usage: java -jar proxy-bench/target/megallm-proxy-bench.jar demo [--port N] [--mock-port N] [--proxy-jar PATH]
              starts the mock MegaLLM upstream and megallm-proxy in front of it with throw-away demo keys
              (data/keys.txt is never touched); --port defaults to 8000, or a free port when 8000 is taken
            """;

    private Demo() {
    }

    public static int run(String[] args) throws Exception {
        Integer port = null;
        int mockPort = 0;
        Path jar = null;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--port" -> port = Integer.parseInt(value(args, ++i));
                case "--mock-port" -> mockPort = Integer.parseInt(value(args, ++i));
                case "--proxy-jar" -> jar = Path.of(value(args, ++i));
                default -> {
                    System.err.print("unknown option: " + args[i] + "\n" + USAGE);
                    return 2;
                }
            }
        }
        jar = jar != null ? jar : findProxyJar();
        if (jar == null) {
            System.err.println("demo: megallm-proxy.jar not found; build it first: mvn -B -q package -DskipTests");
            return 2;
        }
        int proxyPort = port != null ? port : (free(8000) ? 8000 : anyFreePort());

        MockUpstreamServer mock = new MockUpstreamServer(12, 150).start("127.0.0.1", mockPort, 1);
        Path dir = Files.createTempDirectory("megallm-demo");
        Process proxy = null;
        try {
            Files.createDirectories(dir.resolve("data"));
            Files.createDirectories(dir.resolve("logs"));
            Files.writeString(dir.resolve("data/keys.txt"), String.join("\n", KEYS) + "\n", StandardCharsets.UTF_8);
            ProcessBuilder pb = new ProcessBuilder(javaBinary(), "-jar", jar.toAbsolutePath().toString())
                    .directory(dir.toFile())
                    .redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.INHERIT);
            Map<String, String> env = pb.environment();
            NOT_PASSED_ON.forEach(env::remove);
            env.putAll(demoEnvironment(mock.port(), proxyPort, dir));
            proxy = pb.start();
            if (!awaitHealthy(proxyPort, proxy)) {
                System.err.println("demo: the proxy did not come up on port " + proxyPort + " (see its output above)");
                return 1;
            }
            System.out.print(banner(proxyPort, mock.port(), dir));
            System.out.flush();

            CountDownLatch stop = new CountDownLatch(1);
            Signal.handle(new Signal("INT"), s -> stop.countDown());
            Signal.handle(new Signal("TERM"), s -> stop.countDown());
            Process child = proxy;
            child.onExit().thenRun(stop::countDown);
            stop.await();
            if (!child.isAlive()) {
                System.err.println("demo: the proxy exited with " + child.exitValue());
                return child.exitValue() == 0 ? 1 : child.exitValue();
            }
            System.out.println("demo: stopping the proxy and the mock");
            return 0;
        } finally {
            if (proxy != null && proxy.isAlive()) {
                proxy.destroy();
                if (!proxy.waitFor(15, TimeUnit.SECONDS)) {
                    proxy.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
                }
            }
            mock.stop();
            deleteTree(dir);
        }
    }

    static Map<String, String> demoEnvironment(int mockPort, int proxyPort, Path dir) {
        Map<String, String> env = new HashMap<>();
        env.put("MEGALLM_BASE_URL", "http://127.0.0.1:" + mockPort + "/v1");
        env.put("HOST", "127.0.0.1");
        env.put("PORT", Integer.toString(proxyPort));
        env.put("KEYS_FILE", dir.resolve("data/keys.txt").toString());
        env.put("KEY_STATE_FILE", dir.resolve("data/key-state.json").toString());
        env.put("LOG_DIR", dir.resolve("logs").toString());
        env.put("SHUTDOWN_GRACE", "2");
        return env;
    }

    static String banner(int port, int mockPort, Path dir) {
        String base = "http://127.0.0.1:" + port;
        String json = "-H 'Content-Type: application/json'";
        List<String> lines = new ArrayList<>();
        lines.add("");
        lines.add("megallm-proxy demo: the proxy on " + base + ", the mock MegaLLM upstream on http://127.0.0.1:"
                + mockPort + "/v1");
        lines.add("  keys: " + KEYS.size() + " throw-away demo keys in " + dir.resolve("data/keys.txt")
                + " (the mock refuses sk-bad-…: watch the proxy move on to another key)");
        lines.add("  your data/keys.txt, logs/ and .env are not read or written. Ctrl-C stops both.");
        lines.add("");
        lines.add("Try these in a second terminal:");
        lines.add("  curl -s " + base + "/v1/chat/completions " + json
                + " -d '{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}'");
        lines.add("  curl -sN " + base + "/v1/chat/completions " + json
                + " -d '{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}'");
        lines.add("  curl -s " + base + "/v1/chat/completions " + json
                + " -d '{\"messages\":[{\"role\":\"user\",\"content\":\"no model\"}]}'"
                + "   # 400 from the upstream, as the real API answers; DEFAULT_MODEL=gpt-4o-mini fills it in");
        lines.add("  curl -s " + base + "/health");
        lines.add("  curl -s " + base + "/admin/keys        # admin routes answer loopback clients while ADMIN_TOKEN is unset");
        lines.add("  curl -s " + base + "/metrics | grep megallm_ | head -20");
        lines.add("  open " + base + "/docs in a browser: the API documentation");
        lines.add("");
        return String.join(System.lineSeparator(), lines) + System.lineSeparator();
    }

    private static boolean awaitHealthy(int port, Process proxy) throws InterruptedException {
        HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(1)).build();
        URI health = URI.create("http://127.0.0.1:" + port + "/health");
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (System.nanoTime() < deadline && proxy.isAlive()) {
            try {
                HttpResponse<Void> r = http.send(HttpRequest.newBuilder(health).timeout(Duration.ofSeconds(2)).build(),
                        HttpResponse.BodyHandlers.discarding());
                if (r.statusCode() == 200) {
                    return true;
                }
            } catch (IOException e) {
                // Not listening yet.
            }
            // Polling a process that has no other way to say it is ready.
            Thread.sleep(100);
        }
        return false;
    }

    private static Path findProxyJar() {
        List<Path> candidates = new ArrayList<>();
        candidates.add(Path.of("proxy-server/target/megallm-proxy.jar"));
        try {
            Path self = Path.of(Demo.class.getProtectionDomain().getCodeSource().getLocation().toURI());
            // proxy-bench/target/megallm-proxy-bench.jar -> proxy-server/target/megallm-proxy.jar
            Path root = self.getParent() != null && self.getParent().getParent() != null
                    ? self.getParent().getParent().getParent() : null;
            if (root != null) {
                candidates.add(root.resolve("proxy-server/target/megallm-proxy.jar"));
            }
        } catch (Exception e) {
            // Not run from a jar: the working directory is the only hint.
        }
        return candidates.stream().filter(Files::isRegularFile).findFirst().orElse(null);
    }

    private static String javaBinary() {
        return Path.of(System.getProperty("java.home"), "bin", "java").toString();
    }

    private static boolean free(int port) {
        try (ServerSocket s = new ServerSocket()) {
            s.setReuseAddress(true);
            s.bind(new InetSocketAddress("127.0.0.1", port));
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    private static int anyFreePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    private static String value(String[] args, int i) {
        if (i >= args.length) {
            throw new IllegalArgumentException(args[i - 1] + " needs a value");
        }
        return args[i];
    }

    private static void deleteTree(Path dir) {
        try (Stream<Path> paths = Files.walk(dir)) {
            paths.sorted(Comparator.reverseOrder()).forEach(p -> {
                try {
                    Files.deleteIfExists(p);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            });
        } catch (IOException | UncheckedIOException e) {
            System.err.println("demo: could not remove " + dir + ": " + e.getMessage());
        }
    }
}
