package io.megallm.proxy.server.shared;

import io.megallm.proxy.server.keys.Json;
import io.megallm.proxy.server.testing.LogCapture;
import io.megallm.proxy.server.testing.ProxyUnderTest;

import java.net.http.HttpResponse;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** What the tests of several instances read of one: a key's row, the shared state, and polling for a change. */
final class SharedViews {

    private SharedViews() {
    }

    /** The row of key {@code index} in /admin/keys. */
    @SuppressWarnings("unchecked")
    static Map<String, Object> keyEntry(ProxyUnderTest p, int index) throws Exception {
        HttpResponse<String> r = p.get("/admin/keys");
        assertEquals(200, r.statusCode());
        Map<String, Object> body = (Map<String, Object>) Json.parse(r.body());
        return ((List<Map<String, Object>>) body.get("keys")).get(index);
    }

    /** /health's {@code shared_state}. */
    @SuppressWarnings("unchecked")
    static Object sharedState(ProxyUnderTest p) throws Exception {
        return ((Map<String, Object>) Json.parse(p.get("/health").body())).get("shared_state");
    }

    /** Polls until the condition holds, for at most {@code millis}; fails with {@code what} otherwise. */
    static void await(long millis, String what, Check check) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(millis);
        while (!check.holds()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("not within " + millis + " ms: " + what + "; shared-state log: "
                        + LogCapture.lines().stream().filter(l -> l.contains("shared") || l.contains("lettuce")).toList());
            }
            Thread.sleep(10);
        }
    }

    interface Check {
        boolean holds() throws Exception;
    }
}
