package io.megallm.proxy.server.relay;

import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.net.Socket;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Contract §3 HTTP_POOL_MAXSIZE: a request that finds no free upstream connection waits, then gets 503. */
class PoolLimitTest {

    private static final String BODY = "{\"model\":\"m\",\"stream\":true}";

    private static Socket openStream(ProxyUnderTest p) throws Exception {
        Socket s = RawHttp.connect(p.port());
        s.getOutputStream().write(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + "Content-Length: " + BODY.length() + "\r\n\r\n" + BODY).getBytes(StandardCharsets.ISO_8859_1));
        s.getOutputStream().flush();
        return s;
    }

    @Test
    void aRequestThatFindsThePoolFullGets503AfterTheTimeout() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("HTTP_POOL_MAXSIZE", "1", "MEGALLM_TIMEOUT", "0.5"))) {
            p.upstream.otherwise(MockUpstream.sse(1000, 50));
            try (Socket stream = openStream(p)) {
                InputStream in = stream.getInputStream();
                RawHttp.readHead(in, new ByteArrayOutputStream());
                RawHttp.readLine(in);
                p.upstream.otherwise(MockUpstream.json(200, "{}"));
                HttpResponse<String> r = p.chat();
                assertEquals(503, r.statusCode(), r.body());
                assertTrue(r.body().contains("\"code\":\"upstream_pool_exhausted\""), r.body());
            }
        }
    }

    @Test
    void aWaitingRequestGetsTheConnectionWhenOneIsFreed() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("HTTP_POOL_MAXSIZE", "1"))) {
            p.upstream.otherwise(MockUpstream.sse(1000, 20));
            Socket stream = openStream(p);
            InputStream in = stream.getInputStream();
            RawHttp.readHead(in, new ByteArrayOutputStream());
            RawHttp.readLine(in);
            p.upstream.otherwise(MockUpstream.json(200, "{\"second\":true}"));
            CompletableFuture<HttpResponse<String>> waiting = p.client().sendAsync(
                    java.net.http.HttpRequest.newBuilder(p.uri("/v1/chat/completions"))
                            .header("Content-Type", "application/json")
                            .POST(java.net.http.HttpRequest.BodyPublishers.ofString("{\"model\":\"m\"}")).build(),
                    HttpResponse.BodyHandlers.ofString());
            // The waiting request cannot have reached the upstream: the only connection is busy.
            assertEquals(1, p.upstream.requestCount());
            stream.close();
            HttpResponse<String> r = waiting.get();
            assertEquals(200, r.statusCode());
            assertEquals("{\"second\":true}", r.body());
        }
    }
}
