package io.megallm.proxy.server.deploy;

import com.github.dockerjava.api.command.InspectContainerResponse;
import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.testcontainers.containers.GenericContainer;

import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static io.megallm.proxy.server.deploy.DeployTestSupport.KEY;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** `docker stop` in the middle of a stream: the stream ends normally, then the container exits 0. */
class GracefulStopTest {

    private static final int EVENTS = 12;
    private static final long INTERVAL_MS = 250;

    private static MockUpstream upstream;
    private static Path dir;

    @BeforeAll
    @Timeout(value = 20, unit = TimeUnit.MINUTES)
    static void build() throws Exception {
        if (!DeployTestSupport.dockerUsable()) {
            return;
        }
        DeployTestSupport.image();
        upstream = new MockUpstream().otherwise(MockUpstream.sse(EVENTS, INTERVAL_MS));
        dir = DeployTestSupport.workDir("stop");
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
    void dockerStopLetsTheStreamFinishAndExitsZero() throws Exception {
        int port = DeployTestSupport.freePort();
        try (GenericContainer<?> proxy = DeployTestSupport.proxy(port, upstream.baseUrl(),
                DeployTestSupport.keysFile(dir, KEY), DeployTestSupport.logsDir(dir))) {
            proxy.start();
            String id = proxy.getContainerId();
            CompletableFuture<Void>[] stop = new CompletableFuture[1];
            long[] stopAt = new long[1];

            DeployTestSupport.SseStream s = DeployTestSupport.streamChat(port, i -> {
                if (i == 1) {
                    // `docker stop -t 40`: SIGTERM (the image's STOPSIGNAL), SIGKILL only after 40 s.
                    stopAt[0] = System.nanoTime();
                    stop[0] = CompletableFuture.runAsync(() ->
                            DeployTestSupport.docker().stopContainerCmd(id).withTimeout(40).exec());
                }
            });

            long streamEnd = System.nanoTime();
            // Every event and the final [DONE] arrived, and the response ended with HTTP's own end
            // (the reader throws on a cut chunked stream).
            List<String> data = s.data();
            assertEquals(EVENTS + 1, data.size(), "events after docker stop: " + data);
            assertEquals("[DONE]", data.get(EVENTS));

            stop[0].get(60, TimeUnit.SECONDS);
            long stopMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - stopAt[0]);
            System.out.printf("[deploy] docker stop during a stream: the stream ended %d ms after SIGTERM,"
                    + " docker stop returned after %d ms%n", TimeUnit.NANOSECONDS.toMillis(streamEnd - stopAt[0]), stopMillis);
            InspectContainerResponse.ContainerState state = DeployTestSupport.inspect(id).getState();
            assertFalse(Boolean.TRUE.equals(state.getRunning()));
            assertEquals(0L, state.getExitCodeLong(), "exit code after docker stop");
            assertFalse(Boolean.TRUE.equals(state.getOOMKilled()));
            // Exited on its own once the stream was done, well before Docker's 40 s SIGKILL.
            assertTrue(stopMillis < 30_000, "docker stop took " + stopMillis + " ms");

            String logs = proxy.getLogs();
            assertTrue(logs.contains("signal received"), logs);
        }
    }
}
