package io.megallm.proxy.server.ops;

import io.megallm.proxy.key.ApiKey;
import io.megallm.proxy.key.KeyState;
import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.Test;

import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static io.megallm.proxy.server.testing.KeyAsserts.assertKey;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Issue 3: metrics, access log, live key reload. */
class OperatorSurfaceTest {

    private static ApiKey key(ProxyUnderTest p, String secret) {
        String masked = ApiKey.mask(secret);
        return p.server.keys().keys().stream().filter(k -> k.masked().equals(masked)).findFirst().orElseThrow();
    }

    @Test
    void metricsCountWhatTheTestDid() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(3, Map.of())) {
            p.upstream.on(p.keys.get(1), MockUpstream.json(401, "{}"));
            for (int i = 0; i < 3; i++) {
                assertEquals(200, p.chat().statusCode());
            }
            assertEquals(404, p.get("/nope").statusCode());
            assertEquals(200, p.get("/health").statusCode());

            HttpResponse<String> r = p.get("/metrics");
            assertEquals(200, r.statusCode());
            assertTrue(r.headers().firstValue("content-type").orElse("").startsWith("text/plain; version=0.0.4"));
            PrometheusParser m = PrometheusParser.parse(r.body());

            assertEquals(3, m.value("megallm_requests_total", "route", "/v1/chat/completions", "method", "POST", "status", "200"));
            assertEquals(1, m.value("megallm_requests_total", "route", "unmatched", "method", "GET", "status", "404"));
            assertEquals(1, m.value("megallm_requests_total", "route", "/health", "method", "GET", "status", "200"));
            // Three requests: key 0 ok, key 1 rejected then key 2 ok, key 0 ok.
            assertEquals(3, m.value("megallm_upstream_attempts_total", "outcome", "ok"));
            assertEquals(1, m.value("megallm_upstream_attempts_total", "outcome", "401"));
            assertEquals(1, m.value("megallm_key_switches_total"));
            assertEquals(0, m.value("megallm_retries_total"));
            assertEquals(1, m.value("megallm_key_state", "key", ApiKey.mask(p.keys.get(1)), "state", "failed"));
            assertEquals(1, m.value("megallm_key_state", "key", ApiKey.mask(p.keys.get(0)), "state", "available"));
            assertEquals(2, m.value("megallm_key_requests_total", "key", ApiKey.mask(p.keys.get(0))));
            assertEquals(4, m.value("megallm_upstream_ttfb_seconds_count"));
            assertEquals(4, m.value("megallm_upstream_ttfb_seconds_bucket", "le", "+Inf"));
            assertEquals(3, m.value("megallm_upstream_duration_seconds_count"));
            assertEquals(3, m.value("megallm_request_duration_seconds_count"), "the API's requests, not /health nor a 404");
            assertEquals(2, m.value("megallm_keys", "state", "available"));
            assertEquals(1, m.value("megallm_keys", "state", "failed"));
            assertEquals(0, m.value("megallm_keys", "state", "cooling_down"));
            assertEquals("histogram", m.types.get("megallm_upstream_ttfb_seconds"));
            assertTrue(m.value("megallm_response_bytes_total") > 0);
            assertTrue(m.value("megallm_request_body_bytes_total") > 0);
            assertEquals(0, m.value("megallm_active_streams"));
            for (String k : p.keys) {
                assertFalse(r.body().contains(k), "a full key in /metrics");
            }
        }
    }

    @Test
    void metricsFollowTheAdminRule() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("ADMIN_TOKEN", "metrics-admin-token-0001"))) {
            assertEquals(401, p.get("/metrics").statusCode());
            HttpResponse<String> ok = p.send(HttpRequest.newBuilder(p.uri("/metrics"))
                    .header("Authorization", "Bearer metrics-admin-token-0001").GET());
            assertEquals(200, ok.statusCode());
            PrometheusParser.parse(ok.body());
        }
    }

    @Test
    void countersOfKeysAndClientsThatShareALabelDoNotGoDownWhenOneLeaves() throws Exception {
        // Prometheus reads any drop of a counter as a restart: increase() would count the rest again.
        String one = "sk-mega-twin-0000000000000000000aaaa1";
        String two = "sk-mega-twin-1111111111111111111aaaa1";
        Path clients = Files.createTempDirectory("twin-clients").resolve("clients.txt");
        Files.writeString(clients, "ck-twin-one-000001 name=team\nck-twin-two-000002 name=team\n");
        try (ProxyUnderTest p = ProxyUnderTest.start(List.of(one, two), Map.of("PROXY_API_KEYS", "@" + clients))) {
            p.upstream.otherwise(MockUpstream.json(200,
                    "{\"id\":\"c\",\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}"));
            for (int i = 0; i < 4; i++) {
                assertEquals(200, chatAs(p, "ck-twin-one-000001").statusCode());
                assertEquals(200, chatAs(p, "ck-twin-two-000002").statusCode());
            }
            String mask = ApiKey.mask(one);
            assertEquals(mask, ApiKey.mask(two));
            PrometheusParser before = PrometheusParser.parse(p.get("/metrics").body());
            assertEquals(8, before.value("megallm_key_requests_total", "key", mask));
            assertEquals(40, before.value("megallm_client_tokens_total", "client", "team", "kind", "prompt"));
            assertEquals(2, before.value("megallm_keys", "state", "available"));

            Files.writeString(p.workDir.resolve("data/keys.txt"), one + "\n");
            assertTrue(p.server.watcher().awaitReloads(1, 10, TimeUnit.SECONDS), "the key file edit was not picked up");
            Files.writeString(clients, "ck-twin-one-000001 name=team\n");
            // Asked with a body the proxy refuses itself (400 while the client is known): nothing goes upstream.
            for (int i = 0; i < 400 && chatAs(p, "ck-twin-two-000002", "{").statusCode() != 401; i++) {
                Thread.sleep(25);
            }
            assertEquals(401, chatAs(p, "ck-twin-two-000002", "{").statusCode(), "the client file edit was not picked up");

            PrometheusParser after = PrometheusParser.parse(p.get("/metrics").body());
            assertEquals(8, after.value("megallm_key_requests_total", "key", mask), "the removed key's attempts stay counted");
            assertEquals(40, after.value("megallm_client_tokens_total", "client", "team", "kind", "prompt"),
                    "the removed client's tokens stay counted");
            assertEquals(1, after.value("megallm_keys", "state", "available"));
            assertEquals(0, after.value("megallm_keys", "state", "failed"));

            assertEquals(200, chatAs(p, "ck-twin-one-000001").statusCode());
            PrometheusParser later = PrometheusParser.parse(p.get("/metrics").body());
            assertEquals(9, later.value("megallm_key_requests_total", "key", mask));
            assertEquals(45, later.value("megallm_client_tokens_total", "client", "team", "kind", "prompt"));
        }
    }

    private static HttpResponse<String> chatAs(ProxyUnderTest p, String clientKey) throws Exception {
        return chatAs(p, clientKey, "{\"model\":\"m\",\"messages\":[]}");
    }

    private static HttpResponse<String> chatAs(ProxyUnderTest p, String clientKey, String body) throws Exception {
        return p.send(HttpRequest.newBuilder(p.uri("/v1/chat/completions"))
                .header("Authorization", "Bearer " + clientKey).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)));
    }

    @Test
    void accessLogHasOneLinePerRequestWithItsFields() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(2, Map.of())) {
            p.upstream.on(p.keys.get(0), MockUpstream.json(429, "{}", Map.of("Retry-After", "30")));
            HttpResponse<String> r = p.send(HttpRequest.newBuilder(p.uri("/v1/chat/completions?secret=query"))
                    .header("Content-Type", "application/json")
                    .header("X-Forwarded-For", "198.51.100.23")
                    .POST(HttpRequest.BodyPublishers.ofString("{\"model\":\"gpt-4o mini\\u00e9\",\"stream\":false}")));
            assertEquals(200, r.statusCode());
            String rid = r.headers().firstValue("x-request-id").orElseThrow();
            String line = awaitAccessLine(p, rid);
            assertTrue(line.contains(" method=POST "), line);
            assertTrue(line.contains(" path=/v1/chat/completions "), line);
            assertFalse(line.contains("secret=query"), "the query string stays out of the log");
            assertTrue(line.contains(" model=gpt-4o_mini\u00e9 "), line);
            assertTrue(line.contains(" stream=false "), line);
            assertTrue(line.contains(" status=200 "), line);
            assertTrue(line.contains(" key=" + ApiKey.mask(p.keys.get(1)) + " "), line);
            assertTrue(line.contains(" attempts=2 "), line);
            assertTrue(line.contains(" client=127.0.0.1:"), line);
            assertTrue(line.contains(" xff=198.51.100.23 "), line);
            assertTrue(line.matches(".* ttfb_ms=[0-9.]+ duration_ms=[0-9.]+ bytes=[0-9]+ end=complete tokens=(-|[0-9]+/[0-9]+)"), line);
        }
    }

    @Test
    void accessLogLinesStayPrintableUtf8WhateverTheClientSends() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            String body = "{\"model\":\"m\u009b\u202e\u2028x\u00e9\"}";
            byte[] bodyBytes = body.getBytes(StandardCharsets.UTF_8);
            try (Socket s = new Socket("127.0.0.1", p.port())) {
                s.setSoTimeout(10_000);
                OutputStream out = s.getOutputStream();
                out.write(("POST /v1/chat/completions\u00ff\u009b HTTP/1.1\r\nHost: x\r\nX-Request-Id: bytes-1\r\n"
                        + "X-Forwarded-For: 192.0.2.1\u009b[31m\r\nContent-Type: application/json\r\n"
                        + "Connection: close\r\nContent-Length: " + bodyBytes.length + "\r\n\r\n")
                        .getBytes(StandardCharsets.ISO_8859_1));
                out.write(bodyBytes);
                out.flush();
                s.getInputStream().readAllBytes();
            }
            String line = awaitAccessLine(p, "bytes-1");
            assertTrue(line.contains(" path=/v1/chat/completions%FF%9B "), line);
            assertTrue(line.contains(" xff=192.0.2.1%9B[31m "), line);
            // The text's own characters kept, the invisible ones replaced.
            assertTrue(line.contains(" model=m___x\u00e9 "), line);
        }
    }

    @Test
    void aClientsRequestIdWithQuotesIsEchoedAsSentAndLoggedAsOneToken() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            String answer = rawAnswer(p, "GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Request-Id: say\"hi\"=1'\\\r\n"
                    + "Connection: close\r\n\r\n");
            assertTrue(answer.startsWith("HTTP/1.1 200"), answer);
            assertEquals("say\"hi\"=1'\\", requestId(answer), "the id goes back as the client sent it");
            String line = awaitAccessLine(p, "say_hi_=1'\\");
            assertTrue(line.contains(" method=GET path=/v1/models "), line);
        }
    }

    @Test
    void requestsRefusedBeforeTheyWereReadHaveAnAccessLineAndAreCounted() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("MAX_REQUEST_BODY", "1000"))) {
            String smuggled = rawAnswer(p, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                    + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
            String tooLarge = rawAnswer(p, "POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nX-Request-Id: refused-large-1\r\n"
                    + "Content-Length: 5000\r\n\r\n");
            String garbage = rawAnswer(p, "\u0001\u0002 nonsense\r\n\r\n");
            // A head too large to read, and a version we do not speak: the request line was read whole.
            String bigHead = rawAnswer(p, "GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: " + "a".repeat(70_000)
                    + "\r\n\r\n");
            String http2 = rawAnswer(p, "PUT /v1/files HTTP/2.0\r\nHost: x\r\n\r\n");
            assertTrue(smuggled.startsWith("HTTP/1.1 400") && tooLarge.startsWith("HTTP/1.1 413")
                    && garbage.startsWith("HTTP/1.1 400") && bigHead.startsWith("HTTP/1.1 431")
                    && http2.startsWith("HTTP/1.1 505"), smuggled + tooLarge + garbage + bigHead + http2);
            assertEquals(0, p.upstream.requestCount(), "nothing refused went upstream");

            String smuggledLine = awaitAccessLine(p, requestId(smuggled));
            assertTrue(smuggledLine.contains(" method=POST path=/v1/chat/completions "), smuggledLine);
            assertTrue(smuggledLine.contains(" status=400 key=- attempts=0 "), smuggledLine);
            String largeLine = awaitAccessLine(p, "refused-large-1");
            assertTrue(largeLine.contains(" method=POST path=/v1/embeddings "), largeLine);
            assertTrue(largeLine.contains(" status=413 "), largeLine);
            String garbageLine = awaitAccessLine(p, requestId(garbage));
            assertTrue(garbageLine.contains(" method=- path=- "), garbageLine);
            assertTrue(garbageLine.contains(" status=400 "), garbageLine);
            String bigHeadLine = awaitAccessLine(p, requestId(bigHead));
            assertTrue(bigHeadLine.contains(" method=GET path=/v1/models "), bigHeadLine);
            assertTrue(bigHeadLine.contains(" status=431 "), bigHeadLine);
            String http2Line = awaitAccessLine(p, requestId(http2));
            assertTrue(http2Line.contains(" method=PUT path=/v1/files "), http2Line);
            assertTrue(http2Line.contains(" status=505 "), http2Line);

            PrometheusParser m = PrometheusParser.parse(p.get("/metrics").body());
            assertEquals(1, m.value("megallm_requests_total", "route", "refused", "method", "POST", "status", "400"));
            assertEquals(1, m.value("megallm_requests_total", "route", "refused", "method", "POST", "status", "413"));
            assertEquals(1, m.value("megallm_requests_total", "route", "refused", "method", "OTHER", "status", "400"));
            assertEquals(1, m.value("megallm_requests_total", "route", "refused", "method", "GET", "status", "431"));
            assertEquals(1, m.value("megallm_requests_total", "route", "refused", "method", "PUT", "status", "505"));
            assertEquals(200, p.get("/health").statusCode(), "the proxy serves on");
        }
    }

    /** Sends {@code request} on a connection of its own and reads the answer to the close. */
    private static String rawAnswer(ProxyUnderTest p, String request) throws Exception {
        try (Socket s = new Socket("127.0.0.1", p.port())) {
            s.setSoTimeout(10_000);
            s.getOutputStream().write(request.getBytes(StandardCharsets.ISO_8859_1));
            s.getOutputStream().flush();
            return new String(s.getInputStream().readAllBytes(), StandardCharsets.ISO_8859_1);
        }
    }

    private static String requestId(String answer) {
        return answer.lines().filter(l -> l.toLowerCase(java.util.Locale.ROOT).startsWith("x-request-id: "))
                .map(l -> l.substring("x-request-id: ".length()).trim()).findFirst()
                .orElseThrow(() -> new AssertionError("no X-Request-Id in " + answer));
    }

    @Test
    void anIpv6ClientIsLoggedInBracketsSoThatItsPortStandsApart() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("HOST", "::1"))) {
            try (Socket s = new Socket()) {
                try {
                    s.connect(new InetSocketAddress("::1", p.port()), 5000);
                } catch (java.io.IOException e) {
                    org.junit.jupiter.api.Assumptions.assumeTrue(false, "no IPv6 loopback here: " + e);
                }
                s.getOutputStream().write("GET /health HTTP/1.1\r\nHost: x\r\nX-Request-Id: v6-client-1\r\nConnection: close\r\n\r\n"
                        .getBytes(StandardCharsets.ISO_8859_1));
                s.getInputStream().readAllBytes();
            }
            String line = awaitAccessLine(p, "v6-client-1");
            assertTrue(line.matches(".* client=\\[::1\\]:\\d+ .*"), line);
        }
    }

    @Test
    void accessLogSaysWhenTheClientLeft() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            p.upstream.otherwise(MockUpstream.sse(10_000, 20));
            String body = "{\"model\":\"m\",\"stream\":true}";
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress("127.0.0.1", p.port()), 5000);
                OutputStream out = s.getOutputStream();
                out.write(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Request-Id: leaving-client-1\r\n"
                        + "Content-Type: application/json\r\nContent-Length: " + body.length() + "\r\n\r\n" + body)
                        .getBytes(StandardCharsets.ISO_8859_1));
                out.flush();
                InputStream in = s.getInputStream();
                byte[] buf = new byte[4096];
                String got = "";
                while (!got.contains("data:")) {
                    int n = in.read(buf);
                    assertTrue(n > 0);
                    got += new String(buf, 0, n, StandardCharsets.ISO_8859_1);
                }
            }
            String line = awaitAccessLine(p, "leaving-client-1");
            assertTrue(line.contains(" stream=true "), line);
            assertTrue(line.contains(" end=client_gone "), line);
            p.upstream.awaitClosedStream(5, TimeUnit.SECONDS);
        }
    }

    /**
     * The access line of a request. Lines are handed to logback at the end of the event loop's
     * iteration, just after the answer went out, several to an event: split them.
     */
    private static String awaitAccessLine(ProxyUnderTest p, String rid) throws InterruptedException {
        for (int i = 0; i < 200; i++) {
            List<String> hits = p.logLines().stream()
                    .filter(l -> l.startsWith("INFO megallm.access - "))
                    .flatMap(l -> l.substring("INFO megallm.access - ".length()).lines())
                    .filter(l -> l.contains(" rid=" + rid + " ")).toList();
            if (!hits.isEmpty()) {
                assertEquals(1, hits.size(), "one line per request");
                assertTrue(hits.get(0).matches("\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z rid=.*"), hits.get(0));
                return hits.get(0);
            }
            Thread.sleep(25);
        }
        throw new AssertionError("no access line for " + rid);
    }

    @Test
    void anInPlaceEditIsPickedUpAndKeptKeysKeepTheirState() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(2, Map.of())) {
            p.upstream.on(p.keys.get(0), MockUpstream.json(401, "{}"));
            assertEquals(200, p.chat().statusCode());
            assertEquals(KeyState.Kind.FAILED, key(p, p.keys.get(0)).state().kind());

            String added = "sk-mega-added-by-edit-000000000042";
            Path file = p.workDir.resolve("data/keys.txt");
            Files.writeString(file, p.keys.get(0) + "\n" + added + "\n");
            assertTrue(p.server.watcher().awaitReloads(1, 10, TimeUnit.SECONDS), "the edit was not picked up");
            assertEquals(2, p.server.keys().stats().total());
            assertEquals(KeyState.Kind.FAILED, key(p, p.keys.get(0)).state().kind(), "a kept key keeps its state");
            assertEquals(KeyState.Kind.AVAILABLE, key(p, added).state().kind());
        }
    }

    @Test
    void anAtomicRenameIsPickedUp() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            Path file = p.workDir.resolve("data/keys.txt");
            Path tmp = p.workDir.resolve("data/.keys.txt.tmp");
            Files.writeString(tmp, p.keys.get(0) + "\nsk-mega-added-by-rename-0000000007\nsk-mega-added-by-rename-0000000008\n");
            Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            assertTrue(p.server.watcher().awaitReloads(1, 10, TimeUnit.SECONDS), "the rename was not picked up");
            assertEquals(3, p.server.keys().stats().total());
        }
    }

    @Test
    void aFileThatBecomesUnreadableOrEmptyKeepsThePool() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(2, Map.of())) {
            Path file = p.workDir.resolve("data/keys.txt");
            Files.delete(file);
            Files.createDirectory(file);
            assertTrue(p.server.watcher().awaitChanges(1, 10, TimeUnit.SECONDS));
            assertEquals(2, p.server.keys().stats().total(), "a directory in place of the file keeps the pool");
            assertTrue(p.logLines().stream().anyMatch(l -> l.startsWith("ERROR") && l.contains("is a directory")));

            Files.delete(file);
            Files.writeString(file, "# emptied by an editor\n");
            assertTrue(p.server.watcher().awaitChanges(2, 10, TimeUnit.SECONDS));
            assertEquals(2, p.server.keys().stats().total(), "a file without keys keeps the pool");

            Path tmp = p.workDir.resolve("data/next");
            Files.writeString(tmp, p.keys.get(0) + "\n");
            Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            assertTrue(p.server.watcher().awaitReloads(1, 10, TimeUnit.SECONDS));
            assertEquals(1, p.server.keys().stats().total());
        }
    }

    @Test
    void clientKeysMayComeFromAFile() throws Exception {
        Path dir = Files.createTempDirectory("client-keys");
        Path list = dir.resolve("clients.txt");
        Files.writeString(list, "# client keys\nck-file-one-000001\n\nck-file-two-000002\n");
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("PROXY_API_KEYS", "@" + list))) {
            assertEquals(401, p.chat().statusCode());
            HttpResponse<String> ok = p.send(HttpRequest.newBuilder(p.uri("/v1/models"))
                    .header("Authorization", "Bearer ck-file-two-000002").GET());
            assertEquals(200, ok.statusCode());
            assertKey(p.keys.get(0), p.upstream.take().key(), null);
        }
    }

    @Test
    void aStreamCutAtTheEndOfTheShutdownGraceIsLoggedAsShutdownNotClientGone() throws Exception {
        // The access log said client_gone for what the proxy itself closed to exit: an operator
        // reading it after a deploy blamed clients for the cut streams.
        ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("SHUTDOWN_GRACE", "1"));
        p.upstream.otherwise(MockUpstream.sse(600, 100));
        var stream = p.client().sendAsync(HttpRequest.newBuilder(p.uri("/v1/chat/completions"))
                .header("Content-Type", "application/json").header("X-Request-Id", "cut-at-grace")
                .POST(HttpRequest.BodyPublishers.ofString("{\"model\":\"m\",\"stream\":true}")).build(),
                HttpResponse.BodyHandlers.ofInputStream());
        InputStream body = stream.get(30, TimeUnit.SECONDS).body();
        assertTrue(body.read() >= 0, "the stream had begun");
        p.close();
        String line = p.logLines().stream().flatMap(String::lines).filter(l -> l.contains(" rid=cut-at-grace ")).findFirst()
                .orElseThrow(() -> new AssertionError("no access line: " + p.logLines()));
        assertTrue(line.contains(" end=shutdown"), line);
        body.close();
    }
}
