package io.megallm.proxy.server.relay;

import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import io.megallm.proxy.key.ApiKey;
import io.megallm.proxy.server.testing.ManualKeyClock;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.Test;

import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;

import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** White-box review of the relay's state machine, over real sockets. */
class RelayReviewTest {

    private static final String BODY = "{\"model\":\"m\",\"messages\":[]}";

    private static ApiKey key(ProxyUnderTest p, int i) {
        String masked = ApiKey.mask(p.keys.get(i));
        return p.server.keys().keys().stream().filter(k -> k.masked().equals(masked)).findFirst().orElseThrow();
    }

    private static long keysSeen(ProxyUnderTest p, int i) {
        return p.upstream.all().stream().filter(r -> p.keys.get(i).equals(r.key())).count();
    }

    /**
     * §7: a key on trial that answers 500 is back in rotation, and the request moves on from it.
     * The move from the trial key was free by identity ({@code key != trialKey}), for good: with
     * another key resting, the request "waited" (woken at once, the trial key being available),
     * went back to the trial key, uncounted, and round again, past MEGALLM_MAX_RETRIES and
     * MAX_KEY_RETRIES, until its tried-keys array overflowed inside a loop task and the client
     * was never answered.
     */
    @Test
    void aTrialKeyThatAnswers500IsNotSentTheRequestAgainAndAgain() throws Exception {
        ManualKeyClock clock = new ManualKeyClock();
        try (ProxyUnderTest p = ProxyUnderTest.start(ProxyUnderTest.keys(2),
                Map.of("KEY_RECHECK", "5", "KEY_WAIT", "30", "MAX_KEY_RETRIES", "0", "MEGALLM_MAX_RETRIES", "0",
                        "RETRY_BUDGET_MIN", "1000"), clock, null)) {
            p.upstream.on(p.keys.get(0), MockUpstream.json(500, "{\"error\":{\"message\":\"boom\"}}"));
            p.server.keys().markFailed(key(p, 0), 401);
            p.server.keys().limited(key(p, 1), 429, 25);
            clock.advanceSeconds(5);
            // Key 0's trial is due; key 1 rests 20 s more, within KEY_WAIT.

            HttpResponse<String> r = p.client().send(HttpRequest.newBuilder(p.uri("/v1/chat/completions"))
                    .header("Content-Type", "application/json")
                    .timeout(Duration.ofSeconds(15))
                    .POST(HttpRequest.BodyPublishers.ofString(BODY)).build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(500, r.statusCode(), r.body());
            assertTrue(keysSeen(p, 0) <= 1, "the trial key got the request " + keysSeen(p, 0)
                    + " times with MEGALLM_MAX_RETRIES=0 and MAX_KEY_RETRIES=0");
        }
    }

    /**
     * An upstream answer's end hands its connection on at once (to the idle set, and from there
     * to the next request of the same loop, here the client's pipelined one) while the parser is
     * still inside the read that ended it. Bytes after the end of that answer (a 204 that carries
     * a body anyway) then fail the connection under the next request, which had already been
     * written to it: that request counts as sent without an answer and is sent a second time.
     */
    @Test
    void bytesAfterAnAnswerDoNotMakeTheNextRequestOnItsConnectionASecondSend() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of())) {
            AtomicInteger calls = new AtomicInteger();
            p.upstream.otherwise((ctx, req) -> {
                if (calls.getAndIncrement() == 0) {
                    ctx.pipeline().firstContext().writeAndFlush(Unpooled.copiedBuffer(
                            "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello", StandardCharsets.ISO_8859_1));
                } else {
                    MockUpstream.json(200, "{\"id\":\"second\"}").respond(ctx, req);
                }
            });
            String one = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + "Content-Length: " + BODY.length() + "\r\n\r\n" + BODY;
            try (Socket s = RawHttp.connect(p.port())) {
                s.getOutputStream().write((one + one).getBytes(StandardCharsets.ISO_8859_1));
                s.getOutputStream().flush();
                InputStream in = s.getInputStream();
                String first = RawHttp.readHead(in, new ByteArrayOutputStream());
                assertTrue(first.startsWith("HTTP/1.1 204"), first);
                String second = RawHttp.readResponse(in);
                assertTrue(second.startsWith("HTTP/1.1 200"), second);
            }
            assertEquals(2, p.upstream.requestCount(), "the pipelined request was sent twice");
        }
    }

    /**
     * §7: a request moves "never back to a key it has already tried except after waiting for it".
     * Out of keys to move to (A answered 500, B rests 1 s after a 429), the request entered the
     * wait, but the wait let it go at once because a key was usable: A, the one it had just
     * tried. It went back to A without waiting for anything, again and again until its moves ran
     * out, and the client got A's 500 while B, back a second later, would have taken it.
     */
    @Test
    void aRequestOutOfKeysWaitsForTheRestingKeyInsteadOfGoingBackToTheOneItTried() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(2, Map.of("KEY_WAIT", "30", "MAX_KEY_RETRIES", "3",
                "MEGALLM_MAX_RETRIES", "0", "RETRY_BUDGET_MIN", "1000"))) {
            p.upstream.on(p.keys.get(0), MockUpstream.json(500, "{\"error\":{\"message\":\"a is down\"}}"));
            AtomicInteger bCalls = new AtomicInteger();
            p.upstream.on(p.keys.get(1), (ctx, req) -> (bCalls.getAndIncrement() == 0
                    ? MockUpstream.json(429, "{}", Map.of("Retry-After", "1"))
                    : MockUpstream.json(200, "{\"id\":\"b\"}")).respond(ctx, req));
            // The first request goes to A (round robin from the start of the list).
            HttpResponse<String> r = p.chat();
            assertEquals(1, keysSeen(p, 0), "A got the request " + keysSeen(p, 0)
                    + " times with MEGALLM_MAX_RETRIES=0, without the request waiting for it");
            assertEquals(200, r.statusCode(), r.body());
        }
    }

    /**
     * An error answer whose body stops coming is a timeout, as a head that never comes is: 504,
     * not 502 "could not be reached" (the upstream was reached; it went silent).
     */
    @Test
    void anErrorAnswerWhoseBodyStallsIsATimeout() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("MEGALLM_TIMEOUT", "1"))) {
            p.upstream.otherwise((ctx, req) -> ctx.pipeline().firstContext().writeAndFlush(Unpooled.copiedBuffer(
                    "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"error\":",
                    StandardCharsets.US_ASCII)));
            HttpResponse<String> r = p.chat();
            assertEquals(504, r.statusCode(), r.body());
            assertTrue(r.body().contains("\"code\":\"upstream_timeout\""), r.body());
            assertEquals(1, p.upstream.requestCount(), "a 400 is final: not sent again");
        }
    }
}
