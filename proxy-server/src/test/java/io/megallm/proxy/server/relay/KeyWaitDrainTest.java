package io.megallm.proxy.server.relay;

import io.megallm.proxy.key.KeyState;
import io.megallm.proxy.server.testing.Eventually;
import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import io.netty.channel.ChannelHandlerContext;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.net.http.HttpResponse;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Contract §7, KEY_WAIT: "if the first resting key returns within KEY_WAIT seconds, the request
 * waits for it (in arrival order), then goes on". Waiters are woken one per returning key and then
 * one per accepted request; when the first woken request's answer is slow (a long completion, not
 * streamed), the others are never woken while the key stands free, and at their deadline they get
 * 503 no_available_keys although the key came back within their wait.
 */
class KeyWaitDrainTest {

    @Test
    @Timeout(30)
    void requestsWaitingForARestingKeyGoOnWhenItReturnsEvenIfTheFirstOneIsSlow() throws Exception {
        CompletableFuture<ChannelHandlerContext> slow = new CompletableFuture<>();
        MockUpstream.Behavior hold = (ctx, req) -> slow.complete(ctx);
        try (ProxyUnderTest p = ProxyUnderTest.start(1, Map.of("KEY_WAIT", "3"))) {
            p.upstream.otherwise(MockUpstream.sequence(
                    MockUpstream.json(429, "{}", Map.of("Retry-After", "1")),
                    hold, // the first waiter's request: a long completion
                    MockUpstream.json(200, "{\"id\":\"ok\"}")));
            CompletableFuture<HttpResponse<String>> first = p.chatAsync();
            p.upstream.take();
            Eventually.await(5000, "the key rests after its 429",
                    () -> p.server.keys().keys().get(0).state().kind() == KeyState.Kind.COOLING_DOWN);

            // Two more requests while the key rests a second: they wait behind the first.
            List<CompletableFuture<HttpResponse<String>>> later = List.of(p.chatAsync(), p.chatAsync());
            // The rest ends; the first waiter takes the key, and its answer takes long.
            slow.get(10, TimeUnit.SECONDS);

            for (CompletableFuture<HttpResponse<String>> r : later) {
                HttpResponse<String> answer = r.get(20, TimeUnit.SECONDS);
                assertEquals(200, answer.statusCode(), "the key came back 1 s into a 3 s KEY_WAIT and stood free: "
                        + answer.body());
            }
            MockUpstream.json(200, "{\"id\":\"slow\"}").respond(slow.get(), null);
            assertEquals(200, first.get(10, TimeUnit.SECONDS).statusCode());
        }
    }
}
