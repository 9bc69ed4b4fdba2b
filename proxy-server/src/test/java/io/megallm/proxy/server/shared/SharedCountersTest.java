package io.megallm.proxy.server.shared;

import io.lettuce.core.RedisClient;
import io.lettuce.core.api.StatefulRedisConnection;
import io.megallm.proxy.key.KeyClock;
import io.megallm.proxy.server.testing.LocalRedis;
import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static io.megallm.proxy.server.testing.Eventually.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The counters usage totals and client-limit windows are to use (§14), on a real Redis and two
 * instances: each sees the sum of both within the batching; a window expires in Redis; Redis
 * away loses no increment.
 */
class SharedCountersTest {

    private static ProxyUnderTest instance(LocalRedis redis, MockUpstream upstream) throws Exception {
        return ProxyUnderTest.start(ProxyUnderTest.keys(1), Map.of("REDIS_URL", redis.url()), KeyClock.SYSTEM, null,
                upstream);
    }

    @Test
    void eachInstanceSeesTheSumOfBothAndAWindowExpiresInRedis() throws Exception {
        try (LocalRedis redis = LocalRedis.start(); MockUpstream upstream = new MockUpstream();
             ProxyUnderTest a = instance(redis, upstream); ProxyUnderTest b = instance(redis, upstream)) {
            await(10_000, "both connected", () -> a.server.shared().up() && b.server.shared().up());
            SharedCounters ca = new RedisCounters(a.server.shared());
            SharedCounters cb = new RedisCounters(b.server.shared());

            ca.add("usage:client-sha:tokens", 5, 0);
            cb.add("usage:client-sha:tokens", 7, 0);
            assertEquals(5, ca.total("usage:client-sha:tokens"), "what A added counts at once on A");
            await(2000, "both see 12", () -> ca.total("usage:client-sha:tokens") == 12
                    && cb.total("usage:client-sha:tokens") == 12);

            for (int i = 0; i < 3; i++) {
                ca.add("limit:client-sha:rpm:100", 1, 60_000);
            }
            cb.add("limit:client-sha:rpm:100", 2, 60_000);
            await(2000, "a window counted over both", () -> ca.total("limit:client-sha:rpm:100") == 5
                    && cb.total("limit:client-sha:rpm:100") == 5);
            RedisKeyStates.useNioTransport();
            try (RedisClient client = RedisClient.create(redis.url());
                 StatefulRedisConnection<String, String> c = client.connect()) {
                long ttl = c.sync().pttl("megallm:{default}:n:limit:client-sha:rpm:100");
                assertTrue(ttl > 0 && ttl <= 60_000, "a window's lifetime is set by its first increment: " + ttl);
                assertEquals(-1L, c.sync().pttl("megallm:{default}:n:usage:client-sha:tokens"), "a total lives on");
            }

            // Redis away: the increment is counted here at once, and reaches Redis when it is back.
            redis.kill();
            await(5000, "A notices", () -> !a.server.shared().up());
            ca.add("usage:client-sha:tokens", 4, 0);
            assertEquals(16, ca.total("usage:client-sha:tokens"));
            redis.startProcess();
            await(10_000, "A reconnected", () -> a.server.shared().up());
            try (RedisClient client = RedisClient.create(redis.url());
                 StatefulRedisConnection<String, String> c = client.connect()) {
                await(3000, "the increment made while Redis was away reached it",
                        () -> "4".equals(c.sync().get("megallm:{default}:n:usage:client-sha:tokens")));
            }
        }
    }

    @Test
    void theLocalDefaultCountsAloneAndForgetsAnEndedWindow() throws Exception {
        SharedCounters local = SharedCounters.local();
        local.add("usage:x", 3, 0);
        local.add("usage:x", 4, 0);
        assertEquals(7, local.total("usage:x"));
        local.add("limit:x:rpm:1", 2, 1);
        await(1000, "the 1 ms window ends", () -> local.total("limit:x:rpm:1") == 0);
        local.add("limit:x:rpm:1", 1, 60_000);
        assertEquals(1, local.total("limit:x:rpm:1"), "a new window starts from 0");
        assertEquals(0, local.total("unknown"));
    }
}
