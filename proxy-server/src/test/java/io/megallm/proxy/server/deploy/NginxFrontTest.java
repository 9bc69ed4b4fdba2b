package io.megallm.proxy.server.deploy;

import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.testcontainers.containers.GenericContainer;
import org.testcontainers.images.builder.Transferable;
import org.testcontainers.utility.DockerImageName;

import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static io.megallm.proxy.server.deploy.DeployTestSupport.KEY;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * nginx:stable in front of the proxy with docker/nginx/megallm-proxy.conf as shipped; only the
 * addresses are adapted to host networking (upstream 127.0.0.1:8000 and listen 80 become free
 * ports of this machine).
 */
@Timeout(value = 3, unit = TimeUnit.MINUTES)
class NginxFrontTest {

    private static final int EVENTS = 10;
    private static final long INTERVAL_MS = 300;
    private static final int TEN_MIB = 10 * 1024 * 1024;

    private static MockUpstream upstream;
    private static GenericContainer<?> proxy;
    private static GenericContainer<?> nginx;
    private static Path dir;
    private static int nginxPort;

    @BeforeAll
    @Timeout(value = 20, unit = TimeUnit.MINUTES)
    static void start() throws Exception {
        if (!DeployTestSupport.dockerUsable()) {
            return;
        }
        upstream = new MockUpstream()
                .on(KEY, (ctx, req) -> {
                    boolean stream = req.content().toString(StandardCharsets.UTF_8).contains("\"stream\":true");
                    (stream ? MockUpstream.sse(EVENTS, INTERVAL_MS)
                            : MockUpstream.json(200, "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\"}"))
                            .respond(ctx, req);
                });
        dir = DeployTestSupport.workDir("nginx");
        int proxyPort = DeployTestSupport.freePort();
        proxy = DeployTestSupport.proxy(proxyPort, upstream.baseUrl(), DeployTestSupport.keysFile(dir, KEY),
                DeployTestSupport.logsDir(dir));
        proxy.start();

        nginxPort = DeployTestSupport.freePort();
        String site = Files.readString(DeployTestSupport.ROOT.resolve("docker/nginx/megallm-proxy.conf"));
        String adapted = replaceOnce(replaceOnce(site,
                "server 127.0.0.1:8000 ", "server 127.0.0.1:" + proxyPort + " "),
                "    listen 80;", "    listen 127.0.0.1:" + nginxPort + ";");
        // A minimal main file that includes only our site (the image's default site would listen on
        // port 80 of this machine under host networking).
        String main = """
                worker_processes 1;
                pid /tmp/nginx.pid;
                error_log stderr notice;
                events { worker_connections 256; }
                http {
                    include /etc/nginx/mime.types;
                    access_log /dev/stdout;
                    include /etc/nginx/conf.d/megallm-proxy.conf;
                }
                """;
        nginx = new GenericContainer<>(DockerImageName.parse("nginx:stable"))
                .withNetworkMode("host")
                .withCopyToContainer(Transferable.of(adapted), "/etc/nginx/conf.d/megallm-proxy.conf")
                .withCopyToContainer(Transferable.of(main), "/etc/nginx/nginx.conf")
                .waitingFor(DeployTestSupport.portOpen(nginxPort).withStartupTimeout(Duration.ofSeconds(60)));
        nginx.start();
    }

    @BeforeEach
    void requireDocker() {
        DeployTestSupport.assumeDocker();
    }

    @AfterAll
    static void stop() {
        if (nginx != null) {
            nginx.stop();
        }
        if (proxy != null) {
            proxy.stop();
        }
        if (upstream != null) {
            upstream.close();
        }
        DeployTestSupport.deleteQuietly(dir);
    }

    private static String replaceOnce(String text, String from, String to) {
        int at = text.indexOf(from);
        assertTrue(at >= 0 && text.indexOf(from, at + 1) < 0, "exactly one '" + from + "' in the site config");
        return text.substring(0, at) + to + text.substring(at + from.length());
    }

    @Test
    void healthPassesThroughNginx() {
        HttpResponse<String> r = DeployTestSupport.get(nginxPort, "/health", Map.of());
        assertEquals(200, r.statusCode(), r.body());
        assertTrue(r.body().contains("\"healthy\""), r.body());
        assertTrue(r.headers().firstValue("server").orElse("").startsWith("nginx"), "answered through nginx");
    }

    @Test
    void aStreamArrivesThroughNginxEventByEvent() throws Exception {
        DeployTestSupport.SseStream s = DeployTestSupport.streamChat(nginxPort, i -> { });
        List<String> data = s.data();
        assertEquals(EVENTS + 1, data.size(), "events: " + data);
        assertEquals("[DONE]", data.get(EVENTS));
        // First event long before the last: nothing in the chain buffers the stream.
        assertTrue(s.first() < 1500, "first event after " + s.first() + " ms");
        assertTrue(s.last() - s.first() >= (EVENTS - 1) * INTERVAL_MS * 2 / 3,
                "first event at " + s.first() + " ms, last at " + s.last() + " ms: buffered");
    }

    @Test
    void aTenMegabyteBodyIsAcceptedAndALargerOneGets413() {
        byte[] ok = jsonOfSize(TEN_MIB);
        HttpResponse<String> accepted = DeployTestSupport.post(nginxPort, "/v1/chat/completions",
                Map.of("Content-Type", "application/json"), ok);
        assertEquals(200, accepted.statusCode(), "a body of exactly 10 MiB: " + accepted.body());
        int before = upstream.requestCount();
        assertTrue(upstream.all().stream().anyMatch(r -> r.body().length == TEN_MIB), "the 10 MiB body reached the upstream");

        byte[] tooBig = jsonOfSize(TEN_MIB + 1);
        HttpResponse<String> refused = DeployTestSupport.post(nginxPort, "/v1/chat/completions",
                Map.of("Content-Type", "application/json"), tooBig);
        assertEquals(413, refused.statusCode(), refused.body());
        // Nginx's own 413 in the proxy's error shape (§9), not its HTML page.
        assertEquals("application/json", refused.headers().firstValue("content-type").orElse(""));
        assertTrue(refused.body().startsWith("{\"error\":{\"message\":") && refused.body().contains("\"code\":\"request_too_large\""),
                refused.body());
        assertEquals(before, upstream.requestCount(), "a refused body must not reach the upstream");
    }

    /** A valid chat request of exactly {@code size} bytes. */
    private static byte[] jsonOfSize(int size) {
        String head = "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"";
        String tail = "\"}]}";
        byte[] body = new byte[size];
        byte[] h = head.getBytes(StandardCharsets.US_ASCII);
        byte[] t = tail.getBytes(StandardCharsets.US_ASCII);
        System.arraycopy(h, 0, body, 0, h.length);
        Arrays.fill(body, h.length, size - t.length, (byte) 'a');
        System.arraycopy(t, 0, body, size - t.length, t.length);
        return body;
    }
}
