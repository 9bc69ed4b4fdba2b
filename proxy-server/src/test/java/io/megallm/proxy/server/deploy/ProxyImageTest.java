package io.megallm.proxy.server.deploy;

import com.github.dockerjava.api.command.InspectContainerResponse;
import com.github.dockerjava.api.command.InspectImageResponse;
import com.github.dockerjava.api.model.ContainerConfig;
import com.github.dockerjava.api.model.ExposedPort;
import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.testcontainers.containers.Container;
import org.testcontainers.containers.GenericContainer;

import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static io.megallm.proxy.server.deploy.DeployTestSupport.KEY;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The image built from docker/Dockerfile, run as the deployment guide runs it: keys file mounted
 * read-only, logs folder mounted, a (mock) MegaLLM upstream reachable from the container.
 */
@Timeout(value = 3, unit = TimeUnit.MINUTES)
class ProxyImageTest {

    private static final int EVENTS = 10;
    private static final long INTERVAL_MS = 300;

    private static MockUpstream upstream;
    private static GenericContainer<?> proxy;
    private static Path dir;
    private static Path logs;
    private static int port;

    @BeforeAll
    @Timeout(value = 20, unit = TimeUnit.MINUTES)
    static void start() throws Exception {
        if (!DeployTestSupport.dockerUsable()) {
            return;
        }
        upstream = new MockUpstream().otherwise(MockUpstream.sse(EVENTS, INTERVAL_MS));
        dir = DeployTestSupport.workDir("image");
        Path keys = DeployTestSupport.keysFile(dir, KEY);
        logs = DeployTestSupport.logsDir(dir);
        port = DeployTestSupport.freePort();
        proxy = DeployTestSupport.proxy(port, upstream.baseUrl(), keys, logs);
        proxy.start();
    }

    @BeforeEach
    void requireDocker() {
        DeployTestSupport.assumeDocker();
    }

    @AfterAll
    static void stop() {
        if (proxy != null) {
            proxy.stop();
        }
        if (upstream != null) {
            upstream.close();
        }
        DeployTestSupport.deleteQuietly(dir);
    }

    @Test
    void theImageIsWhatTheDockerfileSays() {
        InspectImageResponse image = DeployTestSupport.docker().inspectImageCmd(DeployTestSupport.image()).exec();
        ContainerConfig config = image.getConfig();
        assertNotNull(config);
        assertEquals("/app", config.getWorkingDir());
        assertTrue(List.of(config.getExposedPorts()).contains(ExposedPort.tcp(8000)), "EXPOSE 8000");
        assertArrayEquals(new String[] {"/app/entrypoint.sh"}, config.getEntrypoint());
        assertNotNull(config.getHealthcheck(), "HEALTHCHECK");
        assertEquals(List.of("CMD", "/app/healthcheck.sh"), config.getHealthcheck().getTest());
        System.out.printf("[deploy] image %s: %.0f MB%n", DeployTestSupport.IMAGE, image.getSize() / 1e6);
    }

    @Test
    void theKeysFileIsMountedReadOnly() {
        InspectContainerResponse c = DeployTestSupport.inspect(proxy.getContainerId());
        InspectContainerResponse.Mount keys = c.getMounts().stream()
                .filter(m -> "/app/data/keys.txt".equals(m.getDestination().getPath()))
                .findFirst().orElseThrow();
        assertFalse(keys.getRW(), "keys.txt must be mounted read-only");
        Container.ExecResult write = DeployTestSupport.exec(proxy, "bash", "-c", "echo x >> /app/data/keys.txt");
        assertTrue(write.getExitCode() != 0, "writing the keys file in the container must fail");
    }

    @Test
    void healthIsHealthyWithAKey() {
        HttpResponse<String> r = DeployTestSupport.get(port, "/health", Map.of());
        assertEquals(200, r.statusCode(), r.body());
        assertTrue(r.body().contains("\"status\":\"healthy\""), r.body());
        assertTrue(r.body().contains("\"total\":1"), r.body());
    }

    @Test
    void aStreamedChatArrivesEventByEvent() throws Exception {
        DeployTestSupport.SseStream s = DeployTestSupport.streamChat(port, i -> { });
        assertEquals("no", s.response().headers().firstValue("x-accel-buffering").orElse(null));
        List<String> data = s.data();
        assertEquals(EVENTS + 1, data.size(), "events: " + data);
        assertEquals("[DONE]", data.get(EVENTS));
        for (int i = 0; i < EVENTS; i++) {
            assertTrue(data.get(i).contains("tok" + i), data.get(i));
        }
        // The upstream spends (EVENTS - 1) * 300 ms between its first and last event: a proxy that
        // buffers would deliver everything at the end, together.
        long spread = s.last() - s.first();
        assertTrue(spread >= (EVENTS - 1) * INTERVAL_MS * 2 / 3,
                "first event at " + s.first() + " ms, last at " + s.last() + " ms: not streamed");
        assertTrue(s.first() < 1500, "first event after " + s.first() + " ms");
        // The key reached the upstream, injected by the proxy.
        assertTrue(upstream.all().stream().anyMatch(r -> KEY.equals(r.key())), "the pool key went upstream");
    }

    @Test
    void theProxyRunsAsTheNonRootUser() throws Exception {
        // PID 1 is java itself (no shell or init in between), running as uid/gid 10001 when the
        // mounted logs folder is root's (as it is when CI runs this as root), else as its owner.
        int owner = (Integer) Files.getAttribute(logs, "unix:uid");
        String uid = owner == 0 ? "10001" : Integer.toString(owner);
        String gid = owner == 0 ? "10001" : Integer.toString((Integer) Files.getAttribute(logs, "unix:gid"));
        Container.ExecResult status = DeployTestSupport.exec(proxy, "cat", "/proc/1/status");
        assertTrue(status.getStdout().lines().anyMatch(l -> l.matches("Uid:\\s+" + uid + "(\\s+" + uid + "){3}")),
                status.getStdout());
        assertTrue(status.getStdout().lines().anyMatch(l -> l.matches("Gid:\\s+" + gid + "(\\s+" + gid + "){3}")),
                status.getStdout());
        Container.ExecResult cmdline = DeployTestSupport.exec(proxy, "bash", "-c", "tr '\\0' ' ' < /proc/1/cmdline");
        assertTrue(cmdline.getStdout().startsWith("java "), "PID 1 is " + cmdline.getStdout());
        Container.ExecResult user = DeployTestSupport.exec(proxy, "getent", "passwd", "10001");
        assertTrue(user.getStdout().startsWith("megallm:"), user.getStdout());
    }

    @Test
    void dockerReportsTheContainerHealthy() {
        assertEquals("healthy", DeployTestSupport.awaitHealth(proxy.getContainerId(), "healthy", Duration.ofSeconds(60)));
    }

    @Test
    void appLogAppearsInTheMountedFolder() throws Exception {
        Path appLog = logs.resolve("app.log");
        String text = DeployTestSupport.awaitValue(() -> {
            try {
                return Files.exists(appLog) ? Files.readString(appLog) : "";
            } catch (java.io.IOException e) {
                return "";
            }
        }, t -> t.contains("listening on"), Duration.ofSeconds(30));
        assertTrue(text.contains("listening on"), "logs/app.log on the host: " + text);
        assertTrue(text.contains("loaded 1 keys"), text);
        assertFalse(text.contains(KEY), "a key appears in full in app.log");
    }

    @Test
    void adminCallsWorkFromInsideTheContainerWithoutCurl() {
        // The guide's way when ADMIN_TOKEN is unset: the request comes from the container's loopback.
        Container.ExecResult reload = DeployTestSupport.exec(proxy, "/app/admin.sh", "reload-keys");
        assertEquals(0, reload.getExitCode(), reload.getStdout() + reload.getStderr());
        assertTrue(reload.getStdout().contains("\"total\":1"), reload.getStdout());
        Container.ExecResult keys = DeployTestSupport.exec(proxy, "/app/admin.sh", "keys");
        assertEquals(0, keys.getExitCode(), keys.getStdout() + keys.getStderr());
        assertTrue(keys.getStdout().contains("sk-mega-"), keys.getStdout());
        assertFalse(keys.getStdout().contains(KEY), "admin/keys shows a key in full");
    }

    /**
     * Issue 17: a logs folder of a host user (a checkout's logs/) stays that user's: the proxy runs
     * as its owner, so the files it writes there can be written again by `java -jar` afterwards.
     */
    @Test
    void aHostUsersLogsFolderStaysTheirs() throws Exception {
        Path own = DeployTestSupport.logsDir(dir.resolve("own"));
        int uid = 4242;
        int gid = 4343;
        if ((Integer) Files.getAttribute(own, "unix:uid") == 0) {
            Files.setAttribute(own, "unix:uid", uid);
            Files.setAttribute(own, "unix:gid", gid);
        } else {
            uid = (Integer) Files.getAttribute(own, "unix:uid");
            gid = (Integer) Files.getAttribute(own, "unix:gid");
        }
        Path keys = DeployTestSupport.keysFile(dir.resolve("own"), KEY);
        try (GenericContainer<?> c = DeployTestSupport.proxy(DeployTestSupport.freePort(), upstream.baseUrl(), keys, own)) {
            c.start();
            Path appLog = own.resolve("app.log");
            DeployTestSupport.awaitValue(() -> Files.exists(appLog), exists -> exists, Duration.ofSeconds(30));
            assertEquals(uid, Files.getAttribute(appLog, "unix:uid"), "app.log's owner on the host");
            assertEquals(gid, Files.getAttribute(appLog, "unix:gid"), "app.log's group on the host");
            assertEquals(uid, Files.getAttribute(own, "unix:uid"), "the folder was handed to someone else");
            Container.ExecResult status = DeployTestSupport.exec(c, "cat", "/proc/1/status");
            String u = Integer.toString(uid);
            assertTrue(status.getStdout().lines().anyMatch(l -> l.matches("Uid:\\s+" + u + "(\\s+" + u + "){3}")),
                    status.getStdout());
        }
    }
}
