package io.megallm.proxy.server.shared;

import io.lettuce.core.RedisClient;
import io.lettuce.core.ScriptOutputType;
import io.lettuce.core.api.StatefulRedisConnection;
import io.lettuce.core.pubsub.RedisPubSubAdapter;
import io.lettuce.core.pubsub.StatefulRedisPubSubConnection;
import io.megallm.proxy.server.testing.LocalRedis;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The merge script on a real Redis, rule by rule (contract §14): a later deadline wins, a failure
 * is not forgotten (only a recovery made after it clears it), every accepted change is published
 * once and a refused one not at all, and an entry expires by itself.
 */
class MergeScriptTest {

    private static final String KEY = "megallm:{test}:key:abc";
    private static final String CHANNEL = "megallm:{test}:events";

    private LocalRedis redis;
    private RedisClient client;
    private StatefulRedisConnection<String, String> c;
    private StatefulRedisPubSubConnection<String, String> sub;
    private final LinkedBlockingQueue<String> published = new LinkedBlockingQueue<>();
    private String script;

    @BeforeEach
    void setUp() throws Exception {
        redis = LocalRedis.start();
        RedisKeyStates.useNioTransport();
        client = RedisClient.create(redis.url());
        c = client.connect();
        sub = client.connectPubSub();
        sub.addListener(new RedisPubSubAdapter<>() {
            @Override
            public void message(String channel, String message) {
                published.add(message);
            }
        });
        sub.sync().subscribe(CHANNEL);
        try (InputStream in = RedisKeyStates.class.getResourceAsStream("/redis/merge-key-state.lua")) {
            script = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
    }

    @AfterEach
    void tearDown() throws Exception {
        if (sub != null) {
            sub.close();
        }
        if (c != null) {
            c.close();
        }
        if (client != null) {
            client.shutdown();
        }
        if (redis != null) {
            redis.close();
        }
    }

    /** Sends one change; returns {accepted, kind, until} of what Redis holds afterwards. */
    private List<Object> merge(String kind, long until, long at, boolean clears) {
        return merge(kind, until, at, clears, 1_000_000_000_000L);
    }

    /** The same, sent by an instance whose clock reads {@code now}. */
    private List<Object> merge(String kind, long until, long at, boolean clears, long now) {
        return c.sync().eval(script, ScriptOutputType.MULTI, new String[]{KEY}, "abc", kind, Long.toString(until),
                "0", "300", kind.equals("available") ? "" : "upstream 4xx", Long.toString(at), clears ? "1" : "0",
                "inst", CHANNEL, "60000", Long.toString(now));
    }

    private void assertHolds(List<Object> r, boolean accepted, String kind, long until) {
        assertEquals(accepted ? 1L : 0L, r.get(0), "accepted");
        assertEquals(kind, r.get(1));
        assertEquals(Long.toString(until), r.get(2));
        assertEquals(kind, c.sync().hget(KEY, "kind"));
    }

    private String nextPublished() throws InterruptedException {
        return published.poll(2, TimeUnit.SECONDS);
    }

    @Test
    void aFailureIsNotForgottenByAStaleAvailableButARecoveryAfterItClearsIt() throws Exception {
        assertHolds(merge("failed", 5000, 1000, false), true, "failed", 5000);
        assertTrue(nextPublished().startsWith("s|inst|abc|failed|5000|"));

        assertHolds(merge("available", 0, 2000, false), false, "failed", 5000);
        assertHolds(merge("cooling_down", 9000, 2000, false), false, "failed", 5000);
        assertHolds(merge("available", 0, 900, true), false, "failed", 5000); // a recovery older than the failure
        assertNull(published.poll(200, TimeUnit.MILLISECONDS), "a refused change is not published");

        assertHolds(merge("available", 0, 3000, true), true, "available", 0);
        assertTrue(nextPublished().startsWith("s|inst|abc|available|0|"));
    }

    @Test
    void ofTwoFailuresTheLaterNextTrialWins() {
        merge("failed", 5000, 1000, false);
        assertHolds(merge("failed", 4000, 1100, false), false, "failed", 5000);
        assertHolds(merge("failed", 10000, 1200, false), true, "failed", 10000);
    }

    @Test
    void ofTwoRestsTheLaterEndWinsAndAnAvailableEndsARestOnlyWhenItIsOverOrARecovery() {
        merge("cooling_down", 8000, 1000, false);
        assertHolds(merge("cooling_down", 6000, 1100, false), false, "cooling_down", 8000);
        assertHolds(merge("cooling_down", 9000, 1200, false), true, "cooling_down", 9000);
        assertHolds(merge("available", 0, 2000, false), false, "cooling_down", 9000);
        assertHolds(merge("available", 0, 9500, false), true, "available", 0);
        merge("cooling_down", 20000, 10000, false);
        assertHolds(merge("available", 0, 11000, true), true, "available", 0); // reset by an operator
        assertHolds(merge("failed", 30000, 12000, false), true, "failed", 30000);
    }

    /** A failure or rest from before the last recovery or reset (an old state file, sent again) is refused. */
    @Test
    void aFailureOrRestOlderThanTheLastRecoveryIsRefused() throws Exception {
        assertHolds(merge("failed", 5000, 1000, false), true, "failed", 5000);
        assertHolds(merge("available", 0, 3000, true), true, "available", 0); // reset at 3000
        nextPublished();
        nextPublished();
        assertHolds(merge("failed", 9000, 2000, false), false, "available", 0);
        assertHolds(merge("cooling_down", 9000, 2500, false), false, "available", 0);
        assertNull(published.poll(200, TimeUnit.MILLISECONDS), "a refused change is not published");
        assertHolds(merge("failed", 9000, 3500, false), true, "failed", 9000); // a failure after the reset
    }

    /** An entry from the future (a clock ahead, a forged entry) counts as now: a reset made now wins over it. */
    @Test
    void anEntryFromTheFutureDoesNotOutliveAResetMadeNow() {
        long now = 1_000_000;
        assertHolds(merge("failed", now + 86_400_000, now + 86_400_000, false, now + 86_400_000), true, "failed",
                now + 86_400_000);
        assertHolds(merge("available", 0, now, true, now), true, "available", 0);
        // A recovery stamped in the future does not refuse the failures that follow it either.
        assertHolds(merge("available", 0, now + 86_400_000, true, now + 86_400_000), true, "available", 0);
        assertHolds(merge("failed", now + 600_000, now + 1000, false, now + 1000), true, "failed", now + 600_000);
    }

    @Test
    void everyEntryExpiresByItself() {
        merge("failed", 5000, 1000, false);
        long ttl = c.sync().pttl(KEY);
        assertTrue(ttl > 0 && ttl <= 60000, "ttl " + ttl);
    }
}
