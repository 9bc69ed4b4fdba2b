package io.megallm.proxy.server.relay;

import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.function.Function;
import java.util.stream.Collectors;

import static io.megallm.proxy.server.testing.KeyAsserts.assertKey;
import static io.megallm.proxy.server.testing.KeyAsserts.assertKeyCounts;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** Contract §7: round-robin, fair within one request per key per round. */
class RotationTest {

    private static Map<String, Long> counts(ProxyUnderTest p) {
        return p.upstream.all().stream().collect(Collectors.groupingBy(MockUpstream.Received::key, Collectors.counting()));
    }

    @Test
    void sequentialRequestsRotateOverThreeKeysInOrder() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(3, Map.of())) {
            for (int i = 0; i < 30; i++) {
                assertEquals(200, p.chat().statusCode());
            }
            List<String> seen = p.upstream.all().stream().map(MockUpstream.Received::key).toList();
            for (int i = 3; i < seen.size(); i++) {
                assertKey(seen.get(i - 3), seen.get(i), "rotation order broke at request " + i);
            }
            assertKeyCounts(Map.of(p.keys.get(0), 10L, p.keys.get(1), 10L, p.keys.get(2), 10L), counts(p));
        }
    }

    @Test
    void concurrentRequestsAreSpreadEvenly() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(3, Map.of())) {
            List<CompletableFuture<Integer>> all = new ArrayList<>();
            for (int i = 0; i < 60; i++) {
                all.add(p.client().sendAsync(java.net.http.HttpRequest.newBuilder(p.uri("/v1/chat/completions"))
                                .header("Content-Type", "application/json")
                                .POST(java.net.http.HttpRequest.BodyPublishers.ofString("{\"model\":\"m\"}")).build(),
                        java.net.http.HttpResponse.BodyHandlers.ofString()).thenApply(r -> r.statusCode()));
            }
            for (CompletableFuture<Integer> f : all) {
                assertEquals(200, f.get());
            }
            // Each selection advances the cursor by exactly one when every key is available.
            assertKeyCounts(Map.of(p.keys.get(0), 20L, p.keys.get(1), 20L, p.keys.get(2), 20L), counts(p));
        }
    }

    @Test
    void anUnavailableKeyDoesNotDoubleItsNeighboursShare() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(3, Map.of())) {
            p.upstream.on(p.keys.get(1), MockUpstream.json(401, "{}"));
            // The first request takes key 0, the second finds key 1 rejected and moves on to key 2.
            assertEquals(200, p.chat().statusCode());
            assertEquals(200, p.chat().statusCode());
            int before = p.upstream.requestCount();
            for (int i = 0; i < 20; i++) {
                assertEquals(200, p.chat().statusCode());
            }
            Map<String, Long> after = p.upstream.all().subList(before, p.upstream.requestCount()).stream()
                    .collect(Collectors.groupingBy(MockUpstream.Received::key, Collectors.counting()));
            assertKeyCounts(Map.of(p.keys.get(0), 10L, p.keys.get(2), 10L), after);
        }
    }
}
