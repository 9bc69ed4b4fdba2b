package io.megallm.proxy.server.deploy;

import com.github.dockerjava.api.command.InspectContainerResponse;
import com.github.dockerjava.api.model.Container;
import com.github.dockerjava.api.model.HostConfig;
import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
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
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static io.megallm.proxy.server.deploy.DeployTestSupport.KEY;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The repository's docker-compose.yml, unchanged: Compose accepts it, and `up` with a small
 * override for this machine (host networking, free port, mounts in a scratch folder, a mock
 * upstream) builds the image and brings the service up healthy, with the guide's limits,
 * restart policy, log rotation, and settings taken from an optional .env file.
 */
class ComposeTest {

    private static final String TOKEN = "compose-test-admin-token";

    private static List<String> compose;
    private static MockUpstream upstream;
    private static Path dir;

    @BeforeAll
    @Timeout(value = 20, unit = TimeUnit.MINUTES)
    static void setUp() throws Exception {
        if (!DeployTestSupport.dockerUsable()) {
            return;
        }
        compose = composeCommand();
        if (compose == null) {
            return;
        }
        DeployTestSupport.image(); // the compose build below then comes from Docker's layer cache
        upstream = new MockUpstream();
        dir = DeployTestSupport.workDir("compose");
    }

    @BeforeEach
    void requireDocker() {
        DeployTestSupport.assumeDocker();
        assumeTrue(compose != null, "neither `docker compose` nor `docker-compose` is installed: compose test skipped");
    }

    @AfterAll
    static void cleanUp() {
        if (upstream != null) {
            upstream.close();
        }
        DeployTestSupport.deleteQuietly(dir);
    }

    @Test
    @Timeout(value = 2, unit = TimeUnit.MINUTES)
    void composeAcceptsTheFile() {
        Result config = run(Duration.ofSeconds(60), List.of("-f", composeFile().toString(), "config"));
        assertEquals(0, config.exit(), config.output());
        String out = config.output();
        assertTrue(out.contains("megallm-proxy:"), out);
        assertTrue(out.contains("unless-stopped"), out);
        assertTrue(out.contains("/app/data/keys.txt"), out);
        assertTrue(out.contains("8000"), out);
        assertTrue(out.contains("127.0.0.1:8000:8000") || out.contains("host_ip: 127.0.0.1"),
                "published on loopback only: " + out);
    }

    @Test
    @Timeout(value = 10, unit = TimeUnit.MINUTES)
    void upWithAHostNetworkOverrideComesUpHealthy() throws Exception {
        int port = DeployTestSupport.freePort();
        Path keys = DeployTestSupport.keysFile(dir, KEY);
        Path logs = DeployTestSupport.logsDir(dir);
        String project = "megallmtest" + DeployTestSupport.runId();
        String image = "megallm-proxy-compose-test:" + project;
        // Host networking cannot publish ports, and Compose merges list entries, so an override
        // cannot drop the user's "8000:8000" (`!reset` is v2-only): the base file is the user's
        // docker-compose.yml with its ports block taken out, nothing else changed.
        Path base = dir.resolve("docker-compose.yml");
        // Also its nofile ulimit lowered to what this machine's engine can grant (20000 in the
        // sandbox; the shipped 65536 is DeployFilesTest's to check).
        Files.writeString(base, DeployTestSupport.nofileForThisMachine(withoutPorts(Files.readString(composeFile()))));
        Path override = dir.resolve("docker-compose.host-network.yml");
        Files.writeString(override, """
                # This sandbox's Docker has no bridge network: host networking, and 127.0.0.1 only.
                services:
                  megallm-proxy:
                    build:
                      network: host
                    image: %s
                    network_mode: host
                    volumes:
                      - %s:/app/data/keys.txt:ro
                      - %s:/app/logs
                    environment:
                      - HOST=127.0.0.1
                      - PORT=%d
                      - MEGALLM_BASE_URL=%s
                """.formatted(image, keys, logs, port, upstream.baseUrl()));
        // The operator's optional .env: read by Compose itself and passed on to the proxy.
        Path env = dir.resolve(".env");
        // HTTPS_PROXY (contract §15) passes through too; the mock's base URL is http, so it is not used.
        Files.writeString(env, "ADMIN_TOKEN=" + TOKEN + "\nLOG_LEVEL=INFO\nHTTPS_PROXY=http://127.0.0.1:3128\n");
        // The project directory is the repository root: `context: .` is the real build context.
        List<String> files = List.of("-p", project, "--project-directory", DeployTestSupport.ROOT.toString(),
                "--env-file", env.toString(), "-f", base.toString(), "-f", override.toString());
        try {
            Result config = run(Duration.ofSeconds(60), concat(files, "config"));
            assertEquals(0, config.exit(), config.output());
            assertTrue(config.output().contains("HTTPS_PROXY: http://127.0.0.1:3128"), config.output());

            Result up = run(Duration.ofMinutes(8), concat(files, "up", "-d", "--build"));
            assertEquals(0, up.exit(), up.output());

            String id = containerOf(project);
            assertEquals("healthy", DeployTestSupport.awaitHealth(id, "healthy", Duration.ofSeconds(120)),
                    "Docker health of the compose service");

            HttpResponse<String> health = DeployTestSupport.get(port, "/health", Map.of());
            assertEquals(200, health.statusCode(), health.body());
            HttpResponse<String> chat = DeployTestSupport.post(port, "/v1/chat/completions",
                    Map.of("Content-Type", "application/json"),
                    "{\"model\":\"gpt-4o-mini\",\"messages\":[]}".getBytes(StandardCharsets.UTF_8));
            assertEquals(200, chat.statusCode(), chat.body());

            // ADMIN_TOKEN came from .env: admin calls now need it, even from loopback.
            assertEquals(401, DeployTestSupport.post(port, "/admin/reload-keys", Map.of(), new byte[0]).statusCode());
            HttpResponse<String> reload = DeployTestSupport.post(port, "/admin/reload-keys",
                    Map.of("Authorization", "Bearer " + TOKEN), new byte[0]);
            assertEquals(200, reload.statusCode(), reload.body());
            Result exec = run(Duration.ofSeconds(60), concat(files, "exec", "-T", "megallm-proxy", "/app/admin.sh", "reload-keys"));
            assertEquals(0, exec.exit(), exec.output());
            assertTrue(exec.output().contains("\"total\":1"), exec.output());

            InspectContainerResponse c = DeployTestSupport.inspect(id);
            HostConfig host = c.getHostConfig();
            assertEquals("unless-stopped", host.getRestartPolicy().getName().toString());
            assertEquals(2_000_000_000L, host.getNanoCPUs(), "cpus: 2");
            assertEquals(2L * 1024 * 1024 * 1024, host.getMemory(), "memory: 2G");
            long nofile = Math.min(65536, DeployTestSupport.hardNofileLimit());
            assertTrue(host.getUlimits() != null && Arrays.stream(host.getUlimits()).anyMatch(u -> "nofile".equals(u.getName())
                    && u.getSoft() == nofile && u.getHard() == nofile), "ulimits nofile " + nofile);
            assertEquals("json-file", host.getLogConfig().getType().getType());
            assertEquals("10m", host.getLogConfig().getConfig().get("max-size"));
            assertEquals("5", host.getLogConfig().getConfig().get("max-file"));
            assertTrue(c.getMounts().stream().anyMatch(m -> "/app/data/keys.txt".equals(m.getDestination().getPath())
                    && !m.getRW()), "keys.txt mounted read-only");
            List<String> envs = Arrays.asList(c.getConfig().getEnv());
            assertTrue(envs.contains("ADMIN_TOKEN=" + TOKEN), envs.toString());
            assertFalse(envs.stream().anyMatch(e -> e.startsWith("MEGALLM_TIMEOUT=")),
                    "a setting missing from .env must not reach the container: " + envs);
            assertTrue(Files.exists(logs.resolve("app.log")), "logs/app.log on the host");
        } finally {
            Result down = run(Duration.ofMinutes(2), concat(files, "down", "--timeout", "40"));
            if (down.exit() != 0) {
                System.out.println("[deploy] compose down: " + down.output());
            }
            run(Duration.ofSeconds(60), List.of("__docker", "rmi", image));
        }
    }

    private static String containerOf(String project) {
        List<Container> found = DeployTestSupport.docker().listContainersCmd()
                .withLabelFilter(Map.of("com.docker.compose.project", project))
                .withShowAll(true)
                .exec();
        assertEquals(1, found.size(), "containers of compose project " + project);
        return found.get(0).getId();
    }

    /** The compose file without its {@code ports:} block, its comments included (and only that). */
    static String withoutPorts(String yaml) {
        List<String> out = new ArrayList<>();
        String[] lines = yaml.split("\n", -1);
        int removed = 0;
        for (int i = 0; i < lines.length; i++) {
            if (lines[i].equals("    ports:")) {
                removed++;
                while (i + 1 < lines.length && (lines[i + 1].startsWith("      - ") || lines[i + 1].startsWith("      #"))) {
                    i++;
                }
                continue;
            }
            out.add(lines[i]);
        }
        assertEquals(1, removed, "one ports: block in docker-compose.yml");
        return String.join("\n", out);
    }

    private static Path composeFile() {
        return DeployTestSupport.ROOT.resolve("docker-compose.yml");
    }

    private static List<String> concat(List<String> head, String... tail) {
        List<String> all = new ArrayList<>(head);
        all.addAll(List.of(tail));
        return all;
    }

    /** `docker compose` (v2) when the CLI has it, else `docker-compose`, else null. */
    private static List<String> composeCommand() {
        for (List<String> candidate : List.of(List.of("docker", "compose"), List.of("docker-compose"))) {
            List<String> cmd = new ArrayList<>(candidate);
            cmd.add("version");
            try {
                if (exec(cmd, Duration.ofSeconds(30)).exit() == 0) {
                    System.out.println("[deploy] compose command: " + String.join(" ", candidate));
                    return candidate;
                }
            } catch (UncheckedIOException notInstalled) {
                // next
            }
        }
        return null;
    }

    record Result(int exit, String output) {
    }

    /** Runs compose with {@code args} (or plain docker when args start with "__docker"). */
    private static Result run(Duration timeout, List<String> args) {
        List<String> cmd = new ArrayList<>();
        if (!args.isEmpty() && args.get(0).equals("__docker")) {
            cmd.add("docker");
            cmd.addAll(args.subList(1, args.size()));
        } else {
            cmd.addAll(compose);
            cmd.addAll(args);
        }
        return exec(cmd, timeout);
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
                    return new Result(-1, "timed out after " + timeout + ": " + String.join(" ", cmd) + "\n"
                            + Files.readString(out));
                }
                return new Result(p.exitValue(), Files.readString(out));
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
