package io.megallm.proxy.server.deploy;

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
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The classic: data/keys.txt did not exist on the host, so Docker created a directory there and
 * mounted it. The proxy stays up, reports unhealthy, says why in one line; the guide's fix
 * (replace the directory by the file, recreate the container) makes it healthy.
 */
class MissingKeysFileTest {

    private static MockUpstream upstream;
    private static Path dir;

    @BeforeAll
    @Timeout(value = 20, unit = TimeUnit.MINUTES)
    static void build() throws Exception {
        if (!DeployTestSupport.dockerUsable()) {
            return;
        }
        DeployTestSupport.image();
        upstream = new MockUpstream();
        dir = DeployTestSupport.workDir("nokeys");
    }

    @BeforeEach
    void requireDocker() {
        DeployTestSupport.assumeDocker();
    }

    @AfterAll
    static void cleanUp() {
        if (upstream != null) {
            upstream.close();
        }
        DeployTestSupport.deleteQuietly(dir);
    }

    @Test
    @Timeout(value = 3, unit = TimeUnit.MINUTES)
    void aMissingKeysFileLeavesTheProxyUpAndUnhealthyWithOneClearLine() throws Exception {
        // As on a server: the project's data/ folder is there, data/keys.txt is not.
        Path keys = Files.createDirectories(dir.resolve("data")).resolve("keys.txt");
        assertFalse(Files.exists(keys));
        Path logs = DeployTestSupport.logsDir(dir);
        int port = DeployTestSupport.freePort();
        try (GenericContainer<?> proxy = DeployTestSupport.proxy(port, upstream.baseUrl(), keys, logs)) {
            proxy.start();
            String id = proxy.getContainerId();
            assertTrue(Files.isDirectory(keys), "Docker created a directory in place of the missing file");

            HttpResponse<String> health = DeployTestSupport.get(port, "/health", Map.of());
            assertEquals(503, health.statusCode(), health.body());
            assertTrue(health.body().contains("\"status\":\"unhealthy\""), health.body());
            assertTrue(health.body().contains("\"total\":0"), health.body());

            // The image's own health check says so, and Docker's status follows.
            Container.ExecResult check = DeployTestSupport.exec(proxy, "/app/healthcheck.sh");
            assertEquals(1, check.getExitCode(), "healthcheck.sh with no key");
            assertEquals("unhealthy", DeployTestSupport.awaitHealth(id, "unhealthy", Duration.ofSeconds(60)));
            assertTrue(proxy.isRunning(), "the container stays up");
            assertEquals(0, DeployTestSupport.inspect(id).getState().getExitCodeLong());

            // One clear line that names the cause and the fix.
            List<String> errors = proxy.getLogs().lines().filter(l -> l.contains(" ERROR ")).toList();
            assertEquals(1, errors.size(), "ERROR lines: " + errors);
            String line = errors.get(0);
            assertTrue(line.contains("keys file data/keys.txt is a directory"), line);
            assertTrue(line.contains("Docker"), line);

            // `docker restart` cannot help: Docker refuses to mount the new file where it mounted a
            // directory. The fix from docker/README.md: the directory out, the file in, and a new
            // container (`docker compose up -d --force-recreate`).
            proxy.stop();
            Files.delete(keys);
            Files.writeString(keys, KEY + "\n");
            try (GenericContainer<?> fixed = DeployTestSupport.proxy(port, upstream.baseUrl(), keys, logs)) {
                fixed.start();
                HttpResponse<String> after = DeployTestSupport.get(port, "/health", Map.of());
                assertEquals(200, after.statusCode(), after.body());
                assertEquals("healthy", DeployTestSupport.awaitHealth(fixed.getContainerId(), "healthy",
                        Duration.ofSeconds(60)));

                // Keys added without a restart, as the guide says: rewrite the file in place (same
                // inode: `cp new data/keys.txt`, not `mv` or `sed -i`), then reload.
                Files.writeString(keys, KEY + "\n" + KEY.replace("0001", "0002") + "\n");
                Container.ExecResult reload = DeployTestSupport.exec(fixed, "/app/admin.sh", "reload-keys");
                assertEquals(0, reload.getExitCode(), reload.getStdout() + reload.getStderr());
                assertTrue(reload.getStdout().contains("\"total\":2"), reload.getStdout());
                assertTrue(reload.getStdout().contains("\"added\":1"), reload.getStdout());
            }
        }
    }
}
