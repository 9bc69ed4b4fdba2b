package io.megallm.proxy.server.shared;

import io.lettuce.core.RedisClient;
import io.lettuce.core.api.StatefulRedisConnection;
import io.megallm.proxy.key.KeyClock;
import io.megallm.proxy.server.testing.LocalRedis;
import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.Test;

import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static io.megallm.proxy.server.shared.SharedViews.await;
import static io.megallm.proxy.server.shared.SharedViews.keyEntry;
import static io.megallm.proxy.server.shared.SharedViews.sharedState;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Contract §14: an instance's own, newer key state is not overridden by an older state of another
 * instance. Pub/sub delivery is asynchronous: instance B's recovery of key 0, merged in Redis just
 * before instance A's 401 on the key, can reach A after A failed the key (and after Redis took
 * A's failure). The message carries no time, and A adopts it whatever its own state is.
 */
class LateSharedStateTest {

    @Test
    void anOlderStateFromAnotherInstanceDoesNotUndoANewerLocalFailure() throws Exception {
        List<String> keys = ProxyUnderTest.keys(2);
        RedisKeyStates.useNioTransport();
        try (LocalRedis redis = LocalRedis.start(); MockUpstream upstream = new MockUpstream();
             RedisClient client = RedisClient.create(redis.url());
             StatefulRedisConnection<String, String> c = client.connect()) {
            Map<String, String> env = new HashMap<>(Map.of("KEY_RECHECK", "600", "REDIS_URL", redis.url()));
            try (ProxyUnderTest a = ProxyUnderTest.start(keys, env, KeyClock.SYSTEM, null, upstream)) {
                await(10_000, "A shares", () -> "ok".equals(sharedState(a)));
                String id = SharedKeyStatesTest.sha256(keys.get(0));
                String entry = "megallm:{default}:key:" + id;
                // B recovered key 0 (its merge published this), then A met a 401 with it.
                long before = System.currentTimeMillis() - 1;
                upstream.on(keys.get(0), MockUpstream.json(401, "{}"));
                for (int i = 0; i < 2; i++) {
                    assertEquals(200, a.chat().statusCode());
                }
                await(1000, "A's failure is in Redis", () -> "failed".equals(c.sync().hget(entry, "kind")));

                // B's message, published by Redis before A's failure was merged, reaches A now; then
                // a message about key 1, which A adopts: messages are handled in order, so once it
                // is, so is the one about key 0.
                c.sync().publish("megallm:{default}:events", "s|0123456789ab|" + id + "|available|0|0|0||" + before);
                c.sync().publish("megallm:{default}:events", "s|0123456789ab|" + SharedKeyStatesTest.sha256(keys.get(1))
                        + "|cooling_down|" + (System.currentTimeMillis() + 30_000) + "|1|0|upstream 429");
                await(1000, "A has read both messages", () -> "cooling_down".equals(keyEntry(a, 1).get("state")));

                assertEquals("failed", c.sync().hget(entry, "kind"), "Redis keeps the newer failure");
                assertEquals("failed", keyEntry(a, 0).get("state"),
                        "A gave up its own newer failure (which Redis holds) for B's older recovery");
            }
        }
    }

    /**
     * The other way round: Redis' answer to this instance's own merge is taken whatever its time.
     * B failed key 0 a while ago and A never heard (no message reached it); A's 429 on the key makes
     * it rest here, Redis keeps the failure (a failure is not forgotten) and answers with it, and A
     * takes it although it is older than A's own change. (A first version of the fix above compared
     * times here too, and A went on with a key Redis said was dead.)
     */
    @Test
    void redisAnswerToThisInstancesMergeIsTakenThoughOlder() throws Exception {
        List<String> keys = ProxyUnderTest.keys(2);
        RedisKeyStates.useNioTransport();
        try (LocalRedis redis = LocalRedis.start(); MockUpstream upstream = new MockUpstream();
             RedisClient client = RedisClient.create(redis.url());
             StatefulRedisConnection<String, String> c = client.connect()) {
            Map<String, String> env = new HashMap<>(Map.of("KEY_RECHECK", "600", "REDIS_URL", redis.url()));
            try (ProxyUnderTest a = ProxyUnderTest.start(keys, env, KeyClock.SYSTEM, null, upstream)) {
                await(10_000, "A shares", () -> "ok".equals(sharedState(a)));
                String entry = "megallm:{default}:key:" + SharedKeyStatesTest.sha256(keys.get(0));
                long now = System.currentTimeMillis();
                c.sync().hset(entry, Map.of("kind", "failed", "until", Long.toString(now + 600_000), "strikes", "0",
                        "recheck", "600", "reason", "upstream 401", "at", Long.toString(now - 5_000), "by", "0123456789ab"));
                upstream.on(keys.get(0), MockUpstream.json(429, "{}", Map.of("Retry-After", "5")));
                assertEquals(200, a.chat().statusCode(), "key 1 takes it");
                await(2000, "A takes Redis' failure", () -> "failed".equals(keyEntry(a, 0).get("state")));
                assertEquals("failed", c.sync().hget(entry, "kind"));
            }
        }
    }

}
