package io.megallm.proxy.server.relay;

import io.megallm.proxy.key.KeyState;
import io.megallm.proxy.server.testing.Eventually;
import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.net.http.HttpResponse;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * A waiter that avoids a usable key (it tried it: 500) takes the wake-up a newcomer's entry gives
 * for that key, finds nothing it may take and goes back to the front; the newcomer, queued behind
 * it, sleeps while the key stands free, until the resting key returns.
 */
class KeyWaitStolenWakeTest {

    @Test
    @Timeout(40)
    void aNewRequestIsNotHeldBehindAWaiterThatAvoidsTheFreeKey() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(2, Map.of("KEY_WAIT", "15", "MEGALLM_MAX_RETRIES", "0"))) {
            p.upstream.on(p.keys.get(0), MockUpstream.sequence(
                    MockUpstream.json(500, "{\"error\":\"boom\"}"),
                    MockUpstream.json(200, "{\"id\":\"k0\"}")));
            p.upstream.on(p.keys.get(1), MockUpstream.sequence(
                    MockUpstream.json(429, "{}", Map.of("Retry-After", "8")),
                    MockUpstream.json(200, "{\"id\":\"k1\"}")));
            // A: key 0 answers 500, key 1 429 (rests 8 s): A waits for key 1, avoiding key 0.
            CompletableFuture<HttpResponse<String>> a = p.chatAsync();
            p.upstream.take();
            p.upstream.take();
            Eventually.await(5000, "A waits", () -> p.server.keys().keys().get(1).state().kind()
                    == KeyState.Kind.COOLING_DOWN && waiters(p) == 1);

            // B: key 0 is free and B never tried it.
            HttpResponse<String> b = p.chatAsync().get(30, TimeUnit.SECONDS);
            assertEquals(200, b.statusCode(), b.body());
            assertEquals("{\"id\":\"k0\"}", b.body());
            assertEquals(KeyState.Kind.COOLING_DOWN, p.server.keys().keys().get(1).state().kind(),
                    "B was answered only when key 1 came back: it slept behind A while key 0 stood free");
            assertEquals(200, a.get(30, TimeUnit.SECONDS).statusCode());
        }
    }

    private static int waiters(ProxyUnderTest p) {
        try {
            for (String line : p.get("/metrics").body().split("\n")) {
                if (line.startsWith("megallm_key_waiters ")) {
                    return (int) Double.parseDouble(line.substring("megallm_key_waiters ".length()).trim());
                }
            }
        } catch (Exception e) {
            throw new AssertionError(e);
        }
        throw new AssertionError("no megallm_key_waiters");
    }
}
