package io.megallm.proxy.server.deploy;

import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * docker/docker-compose.scale.yml brought up (contract §11): Redis, three proxies sharing it,
 * Nginx in front. Only what this machine needs is changed, by text substitution on copies of the
 * two files: free ports instead of 6379/8000/8001/8002/80 (other builds run here), the mounts in
 * a scratch folder, a mock upstream. A stream goes through Nginx, and a key that one instance
 * finds dead is out on all three.
 */
class ScaleComposeTest {

    private static final String KEY = "sk-mega-scale-test-key-0001";
    private static final String DEAD = "sk-mega-scale-test-dead-0002";
    /** A request whose message is this gets a stream of SLOW_EVENTS over 15 s. */
    private static final String REDIS_PASSWORD = "0123456789abcdef0123456789abcdef";
    private static final String SLOW = "slow";
    private static final int SLOW_EVENTS = 60;
    private static final long SLOW_INTERVAL_MS = 250;

    @Test
    @Timeout(value = 15, unit = TimeUnit.MINUTES)
    void threeInstancesBehindNginxShareKeyStates() throws Exception {
        DeployTestSupport.assumeDocker();
        List<String> compose = composeCommand();
        assumeTrue(compose != null, "neither `docker compose` nor `docker-compose` is installed");
        DeployTestSupport.image(); // the compose build then comes from Docker's layer cache

        Path dir = DeployTestSupport.workDir("scale");
        String project = "megallmscale" + DeployTestSupport.runId();
        String image = "megallm-proxy-scale-test:" + project;
        try (MockUpstream upstream = new MockUpstream()) {
            upstream.otherwise((ctx, req) -> (req.content().toString(StandardCharsets.UTF_8).contains(SLOW)
                    ? MockUpstream.sse(SLOW_EVENTS, SLOW_INTERVAL_MS) : MockUpstream.sse(5, 20)).respond(ctx, req));
            upstream.on(DEAD, MockUpstream.json(401, "{\"error\":{\"message\":\"invalid key\"}}"));
            Path keys = DeployTestSupport.keysFile(dir, KEY, DEAD);
            int redis = DeployTestSupport.freePort();
            int nginx = DeployTestSupport.freePort();
            int[] proxies = {DeployTestSupport.freePort(), DeployTestSupport.freePort(), DeployTestSupport.freePort()};

            String site = Files.readString(DeployTestSupport.ROOT.resolve("docker/nginx/megallm-proxy-scale.conf"));
            site = once(site, "listen 80;", "listen 127.0.0.1:" + nginx + ";");
            String file = Files.readString(DeployTestSupport.ROOT.resolve("docker/docker-compose.scale.yml"));
            file = once(file, "\"--port\", \"6379\"", "\"--port\", \"" + redis + "\"");
            file = once(file, "@127.0.0.1:6379\"", "@127.0.0.1:" + redis + "\"");
            file = once(file, "image: megallm-proxy:latest", "image: " + image);
            file = once(file, "context: ..", "context: " + DeployTestSupport.ROOT);
            file = once(file, "./nginx/megallm-proxy-scale.conf", dir.resolve("nginx.conf").toString());
            for (int i = 0; i < 3; i++) {
                String port = Integer.toString(8000 + i);
                site = once(site, "server 127.0.0.1:" + port + " ", "server 127.0.0.1:" + proxies[i] + " ");
                file = once(file, "PORT: \"" + port + "\"", "PORT: \"" + proxies[i] + "\"");
                file = once(file, "../logs/" + port, Files.createDirectories(dir.resolve("logs/" + port)).toString());
            }
            file = file.replace("../data/keys.txt", keys.toString());
            file = DeployTestSupport.nofileForThisMachine(file);
            Files.writeString(dir.resolve("nginx.conf"), site);
            Path scale = dir.resolve("docker-compose.scale.yml");
            Files.writeString(scale, file);
            // The operator's .env, given as the file's header says: every setting docker-compose.yml
            // passes reaches all three instances (the upstream too: the file names none of its own).
            Path env = dir.resolve(".env");
            Files.writeString(env, "MEGALLM_BASE_URL=" + upstream.baseUrl() + "\nMEGALLM_TIMEOUT=180\n"
                    + "REDIS_PASSWORD=" + REDIS_PASSWORD + "\n");
            List<String> files = List.of("-p", project, "--env-file", env.toString(), "-f", scale.toString());
            try {
                Result up = exec(concat(compose, files, "up", "-d", "--build"), Duration.ofMinutes(8));
                assertEquals(0, up.exit(), up.output());

                for (int port : proxies) {
                    await(Duration.ofSeconds(90), "instance on " + port + " connected to Redis",
                            () -> get(port, "/health").contains("\"shared_state\":\"ok\""));
                }
                // REDIS_PASSWORD from .env: Redis wants it (the proxies above had it, through REDIS_URL).
                String noAuth = redisPing(redis);
                assertTrue(noAuth.startsWith("-NOAUTH"), "Redis without its password: " + noAuth);
                await(Duration.ofSeconds(30), "nginx answers", () -> get(nginx, "/health").contains("healthy"));
                List<com.github.dockerjava.api.model.Container> containers = DeployTestSupport.docker().listContainersCmd()
                        .withLabelFilter(Map.of("com.docker.compose.project", project)).exec();
                assertEquals(5, containers.size(), "redis, three proxies, nginx");
                for (com.github.dockerjava.api.model.Container c : containers) {
                    if (c.getLabels().getOrDefault("com.docker.compose.service", "").startsWith("proxy-")) {
                        com.github.dockerjava.api.model.HostConfig host = DeployTestSupport.inspect(c.getId()).getHostConfig();
                        assertEquals(2_000_000_000L, host.getNanoCPUs(), "cpus: 2 on " + c.getNames()[0]);
                        assertEquals(2L * 1024 * 1024 * 1024, host.getMemory(), "memory: 2G on " + c.getNames()[0]);
                        List<String> envs = List.of(DeployTestSupport.inspect(c.getId()).getConfig().getEnv());
                        assertTrue(envs.contains("MEGALLM_TIMEOUT=180"), envs.toString());
                        assertTrue(envs.stream().noneMatch(e -> e.startsWith("KEY_WAIT=")),
                                "a setting missing from .env must not reach the container: " + envs);
                    }
                }

                DeployTestSupport.SseStream s = DeployTestSupport.streamChat(nginx, i -> { });
                assertEquals(5, s.events().stream().filter(e -> !e.data().equals("[DONE]")).count(), s.data().toString());

                // Requests through Nginx until some instance has met the dead key: then all three know.
                for (int i = 0; i < 6; i++) {
                    DeployTestSupport.streamChat(nginx, n -> { });
                }
                for (int port : proxies) {
                    await(Duration.ofSeconds(5), "the dead key is failed on " + port,
                            () -> get(port, "/admin/keys").contains("\"failure_reason\":\"upstream 401\""));
                }
                long deadCalls = upstream.all().stream().filter(r -> DEAD.equals(r.key())).count();
                assertTrue(deadCalls >= 1 && deadCalls <= 3, "the dead key reached the upstream " + deadCalls + " times");
                for (int i = 0; i < 6; i++) {
                    DeployTestSupport.streamChat(nginx, n -> { });
                }
                assertEquals(deadCalls, upstream.all().stream().filter(r -> DEAD.equals(r.key())).count(),
                        "no instance used the dead key after it was shared");

                // `down` during a stream through Nginx: Nginx stops gracefully (SIGQUIT) and waits
                // for it, past Docker's default 10 s, then the proxies drain; the stream ends whole.
                long[] downStarted = new long[1];
                Result[] stopped = new Result[1];
                Thread down = new Thread(() -> stopped[0] = exec(concat(compose, files, "down"), Duration.ofMinutes(2)));
                String slowBody = DeployTestSupport.STREAM_BODY.replace("\"Hi\"", "\"" + SLOW + "\"");
                DeployTestSupport.SseStream slow = DeployTestSupport.streamChat(nginx, slowBody, i -> {
                    if (i == 0) {
                        downStarted[0] = System.nanoTime();
                        down.start();
                    }
                });
                long streamMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - downStarted[0]);
                down.join(TimeUnit.MINUTES.toMillis(2));
                assertEquals(0, stopped[0].exit(), stopped[0].output());
                assertEquals(SLOW_EVENTS + 1, slow.events().size(), "a stream cut by `down`: " + slow.data());
                assertEquals("[DONE]", slow.data().get(SLOW_EVENTS));
                assertTrue(streamMillis > 12_000, "the stream ended " + streamMillis + " ms after `down` began");
            } finally {
                Result down = exec(concat(compose, files, "down", "-v", "--timeout", "40"), Duration.ofMinutes(2));
                if (down.exit() != 0) {
                    System.out.println("[deploy] compose down: " + down.output());
                }
                exec(List.of("docker", "rmi", image), Duration.ofSeconds(60));
                DeployTestSupport.deleteQuietly(dir);
            }
        }
    }

    /** Redis's first reply line to an inline PING sent without AUTH. */
    private static String redisPing(int port) throws IOException {
        try (java.net.Socket s = new java.net.Socket("127.0.0.1", port)) {
            s.setSoTimeout(5000);
            s.getOutputStream().write("PING\r\n".getBytes(StandardCharsets.US_ASCII));
            return new java.io.BufferedReader(new java.io.InputStreamReader(s.getInputStream(), StandardCharsets.US_ASCII))
                    .readLine();
        }
    }

    private static String get(int port, String path) {
        try {
            HttpResponse<String> r = DeployTestSupport.get(port, path, Map.of());
            return r.body();
        } catch (RuntimeException e) {
            return "";
        }
    }

    private interface Check {
        boolean holds();
    }

    private static void await(Duration limit, String what, Check check) throws InterruptedException {
        long deadline = System.nanoTime() + limit.toNanos();
        while (!check.holds()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("not within " + limit.toSeconds() + " s: " + what);
            }
            Thread.sleep(100);
        }
    }

    private static String once(String text, String from, String to) {
        int at = text.indexOf(from);
        assertTrue(at >= 0 && text.indexOf(from, at + 1) < 0, "exactly one '" + from + "' in the shipped file");
        return text.replace(from, to);
    }

    private static List<String> concat(List<String> a, List<String> b, String... tail) {
        List<String> all = new ArrayList<>(a);
        all.addAll(b);
        all.addAll(List.of(tail));
        return all;
    }

    record Result(int exit, String output) {
    }

    private static List<String> composeCommand() {
        for (List<String> candidate : List.of(List.of("docker", "compose"), List.of("docker-compose"))) {
            try {
                if (exec(concat(candidate, List.of(), "version"), Duration.ofSeconds(30)).exit() == 0) {
                    return candidate;
                }
            } catch (UncheckedIOException notInstalled) {
                // next
            }
        }
        return null;
    }

    private static Result exec(List<String> cmd, Duration timeout) {
        try {
            Path out = Files.createTempFile("compose", ".log");
            try {
                Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(out.toFile())
                        .directory(DeployTestSupport.ROOT.toFile()).start();
                p.getOutputStream().close();
                if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                    p.destroyForcibly();
                    return new Result(-1, "timed out: " + String.join(" ", cmd) + "\n" + Files.readString(out));
                }
                return new Result(p.exitValue(), Files.readString(out, StandardCharsets.UTF_8));
            } finally {
                Files.deleteIfExists(out);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }
}
