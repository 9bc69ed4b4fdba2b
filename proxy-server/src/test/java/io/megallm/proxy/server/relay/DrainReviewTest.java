package io.megallm.proxy.server.relay;

import io.megallm.proxy.server.testing.Eventually;
import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Contract §10: on SIGTERM "let in-flight requests and streams finish up to SHUTDOWN_GRACE
 * seconds"; README: "idle keep-alive connections close". White-box review of the drain.
 */
class DrainReviewTest {

    private static final String BODY = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

    /**
     * A client uploading its request body when the drain starts has a request in flight: its head
     * was admitted (the proxy even said 100 Continue). It must get its answer, not a cut connection.
     */
    @Test
    @Timeout(30)
    void aRequestWhoseBodyIsStillArrivingAtShutdownIsServed() throws Exception {
        ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("SHUTDOWN_GRACE", "10"));
        // The test stops the proxy itself (ProxyUnderTest.close would stop it a second time).
        try (MockUpstream upstream = p.upstream; Socket s = RawHttp.connect(p.port())) {
            OutputStream out = s.getOutputStream();
            InputStream in = s.getInputStream();
            out.write(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + "Expect: 100-continue\r\nContent-Length: " + BODY.length() + "\r\n\r\n")
                    .getBytes(StandardCharsets.ISO_8859_1));
            out.flush();
            String cont = RawHttp.readHead(in, new ByteArrayOutputStream());
            assertTrue(cont.startsWith("HTTP/1.1 100"), cont);

            CompletableFuture<Void> stop = CompletableFuture.runAsync(p.server::shutdown);
            Eventually.await(5000, "the drain starts", () -> p.server.lifecycle().draining());
            out.write(BODY.getBytes(StandardCharsets.ISO_8859_1));
            out.flush();
            String answer;
            try {
                answer = RawHttp.readResponse(in);
            } catch (java.io.IOException e) {
                answer = e.toString();
            }
            assertTrue(answer.startsWith("HTTP/1.1 200"), "an upload in progress at SIGTERM was cut: " + answer);
            stop.get(20, TimeUnit.SECONDS);
        }
    }

    /**
     * A stream whose head went out before the drain ends during it: the connection is an idle
     * keep-alive one from then on and closes, rather than staying open for another request until
     * the grace of another request runs out.
     */
    @Test
    @Timeout(30)
    void aConnectionWhoseAnswerEndsDuringTheDrainCloses() throws Exception {
        CompletableFuture<io.netty.channel.ChannelHandlerContext> held = new CompletableFuture<>();
        ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("SHUTDOWN_GRACE", "20"));
        try (MockUpstream upstream = p.upstream) {
            // First request: a stream of 3 events, 300 ms apart; second: held until the test ends it.
            p.upstream.otherwise(MockUpstream.sequence(MockUpstream.sse(3, 300), (ctx, req) -> held.complete(ctx)));
            try (Socket a = RawHttp.connect(p.port())) {
                a.setSoTimeout(10_000);
                a.getOutputStream().write(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                        + "Content-Type: application/json\r\nContent-Length: " + BODY.length() + "\r\n\r\n" + BODY)
                        .getBytes(StandardCharsets.ISO_8859_1));
                a.getOutputStream().flush();
                InputStream in = a.getInputStream();
                String head = RawHttp.readHead(in, new ByteArrayOutputStream());
                assertTrue(head.startsWith("HTTP/1.1 200") && !head.toLowerCase().contains("connection: close"), head);

                CompletableFuture<java.net.http.HttpResponse<String>> other = p.chatAsync();
                held.get(10, TimeUnit.SECONDS);
                CompletableFuture<Void> stop = CompletableFuture.runAsync(p.server::shutdown);
                Eventually.await(5000, "the drain starts", () -> p.server.lifecycle().draining());

                RawHttp.readChunks(in, new ByteArrayOutputStream());
                int next;
                try {
                    next = in.read();
                } catch (java.net.SocketTimeoutException e) {
                    next = -2;
                }
                MockUpstream.json(200, "{\"id\":\"held\"}").respond(held.get(), null);
                assertTrue(next == -1, "the connection stayed open after its answer ended in the drain (read: "
                        + next + ")");
                other.get(10, TimeUnit.SECONDS);
                stop.get(20, TimeUnit.SECONDS);
            }
        }
    }
}
