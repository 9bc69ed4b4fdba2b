package io.megallm.proxy.server.keys;

import io.megallm.proxy.key.ApiKey;
import io.megallm.proxy.key.KeyClock;
import io.megallm.proxy.server.testing.ManualKeyClock;
import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.Test;

import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** What an operator sees of the key lifecycle: /admin/keys' recheck_in_s, /health's shape, app.log, the state file. */
class KeyStatesSurfaceTest {

    @SuppressWarnings("unchecked")
    private static Map<String, Object> entry(ProxyUnderTest p, int index) throws Exception {
        HttpResponse<String> r = p.get("/admin/keys");
        assertEquals(200, r.statusCode());
        Map<String, Object> body = (Map<String, Object>) Json.parse(r.body());
        return ((List<Map<String, Object>>) body.get("keys")).get(index);
    }

    @Test
    void aFailedKeyShowsSecondsUntilItsTrialAndTheHealthShapeIsUnchanged() throws Exception {
        ManualKeyClock clock = new ManualKeyClock();
        try (ProxyUnderTest p = ProxyUnderTest.start(ProxyUnderTest.keys(2), Map.of(), clock, null)) {
            p.upstream.on(p.keys.get(0), MockUpstream.json(401, "{}"));
            assertEquals(200, p.chat().statusCode());

            Map<String, Object> failed = entry(p, 0);
            assertEquals("failed", failed.get("state"));
            assertEquals("upstream 401", failed.get("failure_reason"));
            assertEquals(300L, failed.get("recheck_in_s"));
            assertNull(failed.get("cooldown_remaining_s"));
            clock.advanceSeconds(100);
            assertEquals(200L, entry(p, 0).get("recheck_in_s"));
            assertTrue(entry(p, 1).containsKey("recheck_in_s"));
            assertNull(entry(p, 1).get("recheck_in_s"), "null for a key that has not failed");

            assertEquals("{\"status\":\"healthy\",\"key_stats\":{\"total\":2,\"available\":1,\"failed\":1,\"cooling_down\":0},"
                    + "\"version\":\"1.0.0\"}", p.get("/health").body());

            String masked = ApiKey.mask(p.keys.get(0));
            assertTrue(p.logLines().stream().anyMatch(l -> l.contains("key " + masked + " marked failed: upstream 401")
                    && l.contains("next trial in 300s")), p.logLines().toString());
        }
    }

    @Test
    void withKeyRecheckZeroAFailedKeyHasNoTrialTime() throws Exception {
        try (ProxyUnderTest p = ProxyUnderTest.start(ProxyUnderTest.keys(2), Map.of("KEY_RECHECK", "0"))) {
            p.upstream.on(p.keys.get(0), MockUpstream.json(402, "{}"));
            assertEquals(200, p.chat().statusCode());
            Map<String, Object> failed = entry(p, 0);
            assertEquals("failed", failed.get("state"));
            assertTrue(failed.containsKey("recheck_in_s"));
            assertNull(failed.get("recheck_in_s"));
        }
    }

    @Test
    void aRestartInTheSameFolderKeepsAFailedKeyOut() throws Exception {
        List<String> keys = ProxyUnderTest.keys(2);
        Path dir;
        try (ProxyUnderTest first = ProxyUnderTest.start(keys, Map.of())) {
            dir = first.workDir;
            first.upstream.on(keys.get(0), MockUpstream.json(401, "{}"));
            assertEquals(200, first.chat().statusCode());
        }
        String file = Files.readString(dir.resolve("data/key-state.json"));
        for (String k : keys) {
            assertFalse(file.contains(k), "no key in the state file");
        }

        try (ProxyUnderTest second = ProxyUnderTest.start(keys, Map.of(), KeyClock.SYSTEM, dir)) {
            assertEquals("failed", entry(second, 0).get("state"));
            assertEquals("upstream 401", entry(second, 0).get("failure_reason"));
            for (int i = 0; i < 4; i++) {
                assertEquals(200, second.chat().statusCode());
            }
            assertEquals(4, second.upstream.all().size());
            second.upstream.all().forEach(r -> assertEquals(keys.get(1), r.key(), "the failed key stays out"));
            assertTrue(second.logLines().stream().anyMatch(l -> l.contains("restored the states of 1 key(s)")),
                    second.logLines().toString());
        }
    }
}
