package io.megallm.proxy.server.shared;

import io.lettuce.core.KeyScanCursor;
import io.lettuce.core.RedisClient;
import io.lettuce.core.ScanArgs;
import io.lettuce.core.ScanCursor;
import io.lettuce.core.api.StatefulRedisConnection;
import io.lettuce.core.api.sync.RedisCommands;
import io.megallm.proxy.key.KeyClock;
import io.megallm.proxy.server.keys.Json;
import io.megallm.proxy.server.testing.LocalRedis;
import io.megallm.proxy.server.testing.LogCapture;
import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.Test;

import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static io.megallm.proxy.server.shared.SharedViews.keyEntry;
import static io.megallm.proxy.server.shared.SharedViews.sharedState;
import static io.megallm.proxy.server.shared.SharedViews.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Contract §14 with a real Redis ({@code redis-server}, one per test) and two proxies in this JVM
 * sharing it and one mock upstream: what one instance learns about a key, the other knows within a
 * second; Redis going away costs nothing but the sharing, and its return restores it.
 */
class SharedKeyStatesTest {

    private static final long PROPAGATION_MILLIS = 1000;

    private static ProxyUnderTest instance(List<String> keys, LocalRedis redis, MockUpstream upstream,
                                           Map<String, String> extra) throws Exception {
        Map<String, String> env = new java.util.HashMap<>(extra);
        env.put("REDIS_URL", redis.url());
        return ProxyUnderTest.start(keys, env, KeyClock.SYSTEM, null, upstream);
    }

    @SuppressWarnings("unchecked")
    private static int keyCount(ProxyUnderTest p) throws Exception {
        Map<String, Object> body = (Map<String, Object>) Json.parse(p.get("/admin/keys").body());
        return ((List<Object>) body.get("keys")).size();
    }

    private static long requestsWith(MockUpstream upstream, String key) {
        return upstream.all().stream().filter(r -> key.equals(r.key())).count();
    }

    private static void awaitUp(ProxyUnderTest... proxies) throws Exception {
        for (ProxyUnderTest p : proxies) {
            await(10_000, "shared_state ok on " + p.port(), () -> "ok".equals(sharedState(p)));
        }
    }

    @Test
    void aKeyRejectedOnOneInstanceIsNotUsedByTheOther() throws Exception {
        List<String> keys = ProxyUnderTest.keys(3);
        try (LocalRedis redis = LocalRedis.start(); MockUpstream upstream = new MockUpstream();
             ProxyUnderTest a = instance(keys, redis, upstream, Map.of());
             ProxyUnderTest b = instance(keys, redis, upstream, Map.of())) {
            awaitUp(a, b);
            upstream.on(keys.get(0), MockUpstream.json(401, "{\"error\":{\"message\":\"bad key\"}}"));
            for (int i = 0; i < 3; i++) {
                assertEquals(200, a.chat().statusCode());
            }
            assertEquals("failed", keyEntry(a, 0).get("state"));

            await(PROPAGATION_MILLIS, "B sees key 0 failed", () -> "failed".equals(keyEntry(b, 0).get("state")));
            assertEquals("upstream 401", keyEntry(b, 0).get("failure_reason"));
            long before = requestsWith(upstream, keys.get(0));
            for (int i = 0; i < 6; i++) {
                assertEquals(200, b.chat().statusCode());
            }
            assertEquals(before, requestsWith(upstream, keys.get(0)), "B sent a request with the key A found dead");
            assertNoKeyInRedis(redis, keys);
        }
    }

    @Test
    void aRestOnOneInstanceRestsTheKeyOnTheOther() throws Exception {
        List<String> keys = ProxyUnderTest.keys(2);
        try (LocalRedis redis = LocalRedis.start(); MockUpstream upstream = new MockUpstream();
             ProxyUnderTest a = instance(keys, redis, upstream, Map.of());
             ProxyUnderTest b = instance(keys, redis, upstream, Map.of())) {
            awaitUp(a, b);
            upstream.on(keys.get(0), MockUpstream.json(429, "{}", Map.of("Retry-After", "30")));
            for (int i = 0; i < 2; i++) {
                assertEquals(200, a.chat().statusCode());
            }
            assertEquals("cooling_down", keyEntry(a, 0).get("state"));

            await(PROPAGATION_MILLIS, "B sees key 0 resting", () -> "cooling_down".equals(keyEntry(b, 0).get("state")));
            long left = ((Number) keyEntry(b, 0).get("cooldown_remaining_s")).longValue();
            assertTrue(left >= 25 && left <= 30, "B's rest ends when A's does: " + left);
            long before = requestsWith(upstream, keys.get(0));
            for (int i = 0; i < 4; i++) {
                assertEquals(200, b.chat().statusCode());
            }
            assertEquals(before, requestsWith(upstream, keys.get(0)), "B sent a request with the resting key");
            assertNoKeyInRedis(redis, keys);
        }
    }

    @Test
    void aFailedKeysTrialRunsOnOneInstanceAtATime() throws Exception {
        List<String> keys = ProxyUnderTest.keys(2);
        try (LocalRedis redis = LocalRedis.start(); MockUpstream upstream = new MockUpstream();
             ProxyUnderTest a = instance(keys, redis, upstream, Map.of("KEY_RECHECK", "2"));
             ProxyUnderTest b = instance(keys, redis, upstream, Map.of("KEY_RECHECK", "2"))) {
            awaitUp(a, b);
            failKeyZero(a, upstream, keys);
            await(PROPAGATION_MILLIS, "B sees key 0 failed", () -> "failed".equals(keyEntry(b, 0).get("state")));
            long failedAt = System.nanoTime();
            long before = requestsWith(upstream, keys.get(0));
            // Both instances busy through the first trial (due after 2 s); the next one, after a
            // failed trial, is 4 s later: in this window exactly one trial may reach the upstream.
            while (System.nanoTime() - failedAt < TimeUnit.MILLISECONDS.toNanos(3500)) {
                assertEquals(200, a.chat().statusCode());
                assertEquals(200, b.chat().statusCode());
            }
            assertEquals(1, requestsWith(upstream, keys.get(0)) - before,
                    "trials of key 0 across both instances within the first recheck window; "
                            + a.logLines().stream().filter(l -> l.contains("trial") || l.contains("shared state")).toList());

            // The key recovers: the next trial (4 s after the failed one) passes on one instance,
            // and the other puts it back in rotation too.
            upstream.on(keys.get(0), MockUpstream.json(200, "{\"id\":\"ok\"}"));
            await(8000, "key 0 back in rotation on both", () -> {
                a.chat();
                b.chat();
                return "available".equals(keyEntry(a, 0).get("state")) && "available".equals(keyEntry(b, 0).get("state"));
            });
        }
    }

    /**
     * A lease entry no instance wrote (set by hand without a lifetime) neither counts as granted to
     * every instance (both ran the trial) nor blocks the key's trials for good: it is replaced, and
     * one instance runs the trial.
     */
    @Test
    void aLeaseWithoutLifetimeIsReplacedAndOneInstanceRunsTheTrial() throws Exception {
        List<String> keys = ProxyUnderTest.keys(2);
        RedisKeyStates.useNioTransport();
        try (LocalRedis redis = LocalRedis.start(); MockUpstream upstream = new MockUpstream();
             ProxyUnderTest a = instance(keys, redis, upstream, Map.of("KEY_RECHECK", "2"));
             ProxyUnderTest b = instance(keys, redis, upstream, Map.of("KEY_RECHECK", "2"));
             RedisClient client = RedisClient.create(redis.url());
             StatefulRedisConnection<String, String> c = client.connect()) {
            awaitUp(a, b);
            String lease = "megallm:{default}:trial:" + sha256(keys.get(0));
            assertEquals("OK", c.sync().set(lease, "left-by-hand"));
            failKeyZero(a, upstream, keys);
            await(PROPAGATION_MILLIS, "B sees key 0 failed", () -> "failed".equals(keyEntry(b, 0).get("state")));
            long failedAt = System.nanoTime();
            long before = requestsWith(upstream, keys.get(0));
            // As in the test above: through the first trial (due after 2 s), exactly one reaches the upstream.
            while (System.nanoTime() - failedAt < TimeUnit.MILLISECONDS.toNanos(3500)) {
                assertEquals(200, a.chat().statusCode());
                assertEquals(200, b.chat().statusCode());
            }
            assertEquals(1, requestsWith(upstream, keys.get(0)) - before,
                    "trials of key 0 across both instances with a lease left without a lifetime");
            assertTrue(c.sync().pttl(lease) != -1, "no lease without a lifetime is left");
        }
    }

    /**
     * The race behind a CI failure of the test above: this instance lost the trial lease and put its
     * trial back, then a state from Redis that was older than the lease (pub/sub is not ordered
     * with the lease) said the trial was due. The lease's end decides, not that state.
     */
    @Test
    void aLateStateFromRedisDoesNotStartATrialAnotherInstanceHolds() throws Exception {
        List<String> keys = ProxyUnderTest.keys(2);
        RedisKeyStates.useNioTransport();
        try (LocalRedis redis = LocalRedis.start(); MockUpstream upstream = new MockUpstream();
             ProxyUnderTest b = instance(keys, redis, upstream, Map.of("KEY_RECHECK", "2"));
             RedisClient client = RedisClient.create(redis.url());
             StatefulRedisConnection<String, String> c = client.connect()) {
            awaitUp(b);
            String id = sha256(keys.get(0));
            // Another instance holds key 0's trial lease for the next 6 s.
            assertEquals("OK", c.sync().set("megallm:{default}:trial:" + id, "0123456789ab",
                    io.lettuce.core.SetArgs.Builder.px(6000)));
            int mark = LogCapture.size();
            failKeyZero(b, upstream, keys);
            assertEquals("failed", keyEntry(b, 0).get("state"));
            await(3000, "B's claim of the trial (due in 2 s) is lost to the holder",
                    () -> LogCapture.since(mark).stream().anyMatch(l -> l.contains("lost the trial lease")));

            // A late, older state: failed, trial due a second ago.
            int late = LogCapture.size();
            c.sync().publish("megallm:{default}:events", "s|0123456789ab|" + id + "|failed|"
                    + (System.currentTimeMillis() - 1000) + "|0|2|upstream 401");
            await(PROPAGATION_MILLIS, "B adopts the late state",
                    () -> LogCapture.since(late).stream().anyMatch(l -> l.contains("as another instance found")));
            long before = requestsWith(upstream, keys.get(0));
            for (int i = 0; i < 10; i++) {
                assertEquals(200, b.chat().statusCode());
            }
            assertEquals(before, requestsWith(upstream, keys.get(0)),
                    "B ran a trial whose lease another instance holds");

            // The lease ends: B's own trial runs then, passes, and the key is back.
            upstream.on(keys.get(0), MockUpstream.json(200, "{\"id\":\"ok\"}"));
            await(10_000, "key 0 back in rotation after the lease", () -> {
                b.chat();
                return "available".equals(keyEntry(b, 0).get("state"));
            });
            assertEquals(before + 1, requestsWith(upstream, keys.get(0)), "one trial, after the lease");
        }
    }

    /**
     * An instance started again on its KEY_STATE_FILE from before an operator's reset made on another
     * instance meanwhile: the reset is newer, so it stands everywhere, and the restarted instance takes it.
     */
    @Test
    void aRestartOnAnOldStateFileDoesNotUndoALaterReset() throws Exception {
        List<String> keys = ProxyUnderTest.keys(2);
        Map<String, String> env = Map.of("KEY_RECHECK", "600");
        try (LocalRedis redis = LocalRedis.start(); MockUpstream upstream = new MockUpstream();
             ProxyUnderTest b = instance(keys, redis, upstream, env)) {
            java.nio.file.Path aDir;
            try (ProxyUnderTest a = instance(keys, redis, upstream, env)) {
                awaitUp(a, b);
                aDir = a.workDir;
                failKeyZero(a, upstream, keys);
                await(PROPAGATION_MILLIS, "B sees key 0 failed", () -> "failed".equals(keyEntry(b, 0).get("state")));
            } // A stops; its state file says key 0 failed
            assertEquals(200, b.post("/admin/reset-failed-keys", "").statusCode());
            assertEquals("available", keyEntry(b, 0).get("state"));
            upstream.on(keys.get(0), MockUpstream.json(200, "{\"id\":\"ok\"}"));
            int mark = LogCapture.size();

            Map<String, String> again = new java.util.HashMap<>(env);
            again.put("REDIS_URL", redis.url());
            try (ProxyUnderTest a = ProxyUnderTest.start(keys, again, KeyClock.SYSTEM, aDir, upstream)) {
                assertTrue(a.logLines().stream().anyMatch(l -> l.contains("restored the states of 1 key")),
                        "A read its old failure back from its state file");
                awaitUp(a);
                await(3000, "A takes the reset made after its failure",
                        () -> "available".equals(keyEntry(a, 0).get("state")));
                assertEquals("available", keyEntry(b, 0).get("state"), "B keeps the operator's reset");
                assertTrue(LogCapture.since(mark).stream().noneMatch(l -> l.contains("now failed")),
                        "no instance took the old failure back: " + LogCapture.since(mark));
            }
        }
    }

    /** An entry stamped a day ahead (a clock running ahead, or forged) does not override a reset made now. */
    @Test
    void aResetWinsOverAnEntryFromTheFuture() throws Exception {
        List<String> keys = ProxyUnderTest.keys(2);
        RedisKeyStates.useNioTransport();
        try (LocalRedis redis = LocalRedis.start(); MockUpstream upstream = new MockUpstream();
             ProxyUnderTest a = instance(keys, redis, upstream, Map.of("KEY_RECHECK", "600"));
             RedisClient client = RedisClient.create(redis.url());
             StatefulRedisConnection<String, String> c = client.connect()) {
            String entry = failKeyZeroIntoRedis(a, upstream, keys, c);
            c.sync().hset(entry, "at", Long.toString(System.currentTimeMillis() + TimeUnit.DAYS.toMillis(1)));

            assertEquals(200, a.post("/admin/reset-failed-keys", "").statusCode());
            await(PROPAGATION_MILLIS, "the reset is in Redis", () -> "available".equals(c.sync().hget(entry, "kind")));
            assertEquals("available", keyEntry(a, 0).get("state"), "A keeps its reset");
        }
    }

    /** The id Redis holds for a key or client key, computed here on its own (contract §14: SHA-256, hex). */
    static String sha256(String s) throws Exception {
        return java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256")
                .digest(s.getBytes(StandardCharsets.UTF_8)));
    }

    @Test
    void aReloadOnOneInstanceReloadsTheOther() throws Exception {
        List<String> keys = ProxyUnderTest.keys(2);
        List<String> more = ProxyUnderTest.keys(3);
        try (LocalRedis redis = LocalRedis.start(); MockUpstream upstream = new MockUpstream();
             ProxyUnderTest a = instance(more, redis, upstream, Map.of());
             ProxyUnderTest b = instance(keys, redis, upstream, Map.of())) {
            awaitUp(a, b);
            // B's file gains the third key; only A is told to reload.
            Files.writeString(b.workDir.resolve("data/keys.txt"), String.join("\n", more) + "\n",
                    StandardCharsets.UTF_8);
            HttpResponse<String> r = a.post("/admin/reload-keys", "");
            assertEquals(200, r.statusCode());
            await(5000, "B reloads its own file", () -> keyCount(b) == 3);
            assertTrue(b.logLines().stream().anyMatch(l -> l.contains("another instance reloaded its key file")),
                    "B reloaded because A announced it");
        }
    }

    /** A flood of reload announcements on the channel costs a few reloads, not one each. */
    @Test
    void aFloodOfReloadAnnouncementsIsCoalesced() throws Exception {
        List<String> keys = ProxyUnderTest.keys(2);
        List<String> more = ProxyUnderTest.keys(3);
        RedisKeyStates.useNioTransport();
        try (LocalRedis redis = LocalRedis.start(); MockUpstream upstream = new MockUpstream();
             ProxyUnderTest b = instance(keys, redis, upstream, Map.of());
             RedisClient client = RedisClient.create(redis.url());
             StatefulRedisConnection<String, String> c = client.connect()) {
            awaitUp(b);
            Files.writeString(b.workDir.resolve("data/keys.txt"), String.join("\n", more) + "\n", StandardCharsets.UTF_8);
            int mark = LogCapture.size();
            int flood = 2000;
            c.setAutoFlushCommands(false);
            List<io.lettuce.core.RedisFuture<Long>> sent = new ArrayList<>();
            for (int i = 0; i < flood; i++) {
                sent.add(c.async().publish("megallm:{default}:events", "r|0123456789ab"));
            }
            // Last on the channel, so handled after every announcement: key 1 resting.
            sent.add(c.async().publish("megallm:{default}:events", "s|0123456789ab|" + sha256(keys.get(1))
                    + "|cooling_down|" + (System.currentTimeMillis() + 60_000) + "|1|0|upstream 429"));
            c.flushCommands();
            c.setAutoFlushCommands(true);
            for (io.lettuce.core.RedisFuture<Long> f : sent) {
                f.get(10, TimeUnit.SECONDS);
            }
            await(10_000, "B handled the whole flood", () -> "cooling_down".equals(keyEntry(b, 1).get("state")));
            await(PROPAGATION_MILLIS, "B reloaded its file", () -> keyCount(b) == 3);
            long reloads = LogCapture.since(mark).stream()
                    .filter(l -> l.contains("another instance reloaded its key file")).count();
            assertTrue(reloads >= 1 && reloads <= 20, reloads + " reloads for " + flood + " announcements");
        }
    }

    @Test
    void redisGoneAndBackCostsNothingButSharing() throws Exception {
        List<String> keys = ProxyUnderTest.keys(3);
        try (LocalRedis redis = LocalRedis.start(); MockUpstream upstream = new MockUpstream();
             ProxyUnderTest a = instance(keys, redis, upstream, Map.of());
             ProxyUnderTest b = instance(keys, redis, upstream, Map.of())) {
            awaitUp(a, b);
            assertTrue(a.get("/metrics").body().contains("megallm_shared_state_up 1"));
            int warnsBefore = warnings();

            redis.kill();
            for (ProxyUnderTest p : List.of(a, b)) {
                await(5000, "shared_state unavailable on " + p.port(), () -> "unavailable".equals(sharedState(p)));
                assertEquals(200, p.get("/health").statusCode(), "an instance alone is still healthy");
                assertTrue(p.get("/metrics").body().contains("megallm_shared_state_up 0"));
            }
            // While Redis is away A learns that key 0 is dead; everyone keeps serving.
            upstream.on(keys.get(0), MockUpstream.json(401, "{}"));
            for (int i = 0; i < 10; i++) {
                assertEquals(200, a.chat().statusCode());
                assertEquals(200, b.chat().statusCode());
            }
            assertEquals("failed", keyEntry(a, 0).get("state"));
            assertEquals(2, warnings() - warnsBefore, "one warning per instance, not one per request");
            assertTrue(a.logLines().stream().noneMatch(l -> l.contains("io.lettuce") && !l.startsWith("ERROR")),
                    "Lettuce's own reconnection chatter stays out of the log");

            // Back, empty (no persistence): both reconnect, and A's failure is published and reaches B.
            redis.startProcess();
            awaitUp(a, b);
            await(3000, "B learns A's failure made while Redis was away",
                    () -> "failed".equals(keyEntry(b, 0).get("state")));
            try (RedisClient client = RedisClient.create(redis.url());
                 StatefulRedisConnection<String, String> c = client.connect()) {
                String id = sha256(keys.get(0));
                assertEquals("failed", c.sync().hget("megallm:{default}:key:" + id, "kind"));
            }
            assertNoKeyInRedis(redis, keys);
        }
    }

    /** Redis flushed under a kept connection: the instances notice (as usage does) and publish their key states again. */
    @Test
    void aFlushedRedisIsRefilledWithTheKeyStates() throws Exception {
        List<String> keys = ProxyUnderTest.keys(2);
        RedisKeyStates.useNioTransport();
        try (LocalRedis redis = LocalRedis.start(); MockUpstream upstream = new MockUpstream();
             ProxyUnderTest a = instance(keys, redis, upstream, Map.of("KEY_RECHECK", "600"));
             RedisClient client = RedisClient.create(redis.url());
             StatefulRedisConnection<String, String> c = client.connect()) {
            String entry = failKeyZeroIntoRedis(a, upstream, keys, c);
            // What tells the instance: its usage batches, whose record Redis loses with the rest.
            await(5000, "A's usage is in Redis", () -> c.sync().exists("megallm:{default}:usage:seq") == 1);
            assertEquals("OK", c.sync().flushall());
            await(5000, "the failure is in Redis again", () -> "failed".equals(c.sync().hget(entry, "kind")));
        }
    }

    @Test
    void anInstanceStartedWhileRedisIsDownServesAloneAndJoinsWhenItComes() throws Exception {
        List<String> keys = ProxyUnderTest.keys(2);
        try (LocalRedis redis = LocalRedis.start(); MockUpstream upstream = new MockUpstream()) {
            redis.kill();
            try (ProxyUnderTest a = instance(keys, redis, upstream, Map.of());
                 ProxyUnderTest b = instance(keys, redis, upstream, Map.of())) {
                assertEquals("unavailable", sharedState(a));
                upstream.on(keys.get(0), MockUpstream.json(402, "{}"));
                for (int i = 0; i < 3; i++) {
                    assertEquals(200, a.chat().statusCode());
                }
                assertEquals("failed", keyEntry(a, 0).get("state"));
                assertEquals("available", keyEntry(b, 0).get("state"), "nothing shared without Redis");

                redis.startProcess();
                awaitUp(a, b);
                await(3000, "B learns what A found before Redis came", () -> "failed".equals(keyEntry(b, 0).get("state")));
                assertEquals("upstream 402", keyEntry(b, 0).get("failure_reason"));
            }
        }
    }

    @Test
    void aFrozenRedisDelaysNoRequestAndIsNoticed() throws Exception {
        List<String> keys = ProxyUnderTest.keys(3);
        try (LocalRedis redis = LocalRedis.start(); MockUpstream upstream = new MockUpstream();
             ProxyUnderTest a = instance(keys, redis, upstream, Map.of());
             ProxyUnderTest b = instance(keys, redis, upstream, Map.of())) {
            awaitUp(a, b);
            redis.freeze();
            try {
                // State changes on A (its sends to Redis get no answer) and plain traffic on both:
                // a request that waited for Redis would take its 2 s command timeout.
                upstream.on(keys.get(0), MockUpstream.json(401, "{}"));
                upstream.on(keys.get(1), MockUpstream.json(429, "{}", Map.of("Retry-After", "60")));
                long slowest = 0;
                for (int i = 0; i < 20; i++) {
                    for (ProxyUnderTest p : List.of(a, b)) {
                        long start = System.nanoTime();
                        assertEquals(200, p.chat().statusCode());
                        slowest = Math.max(slowest, System.nanoTime() - start);
                    }
                }
                assertTrue(slowest < TimeUnit.MILLISECONDS.toNanos(1500),
                        "slowest request " + TimeUnit.NANOSECONDS.toMillis(slowest) + " ms while Redis answered nothing");
                for (ProxyUnderTest p : List.of(a, b)) {
                    await(6000, "a silent Redis shows as unavailable on " + p.port(),
                            () -> "unavailable".equals(sharedState(p)));
                }
            } finally {
                redis.thaw();
            }
            awaitUp(a, b);
            await(3000, "what A learnt while Redis was frozen reaches B",
                    () -> "failed".equals(keyEntry(b, 0).get("state")) && "cooling_down".equals(keyEntry(b, 1).get("state")));
        }
    }

    private static int warnings() {
        return (int) LogCapture.since(0).stream()
                .filter(l -> l.contains("WARN") && l.contains("shared state: Redis") && l.contains("unavailable"))
                .count();
    }

    /** Every key and every value in Redis: SHA-256 ids only, never a pool key. */
    static void assertNoKeyInRedis(LocalRedis redis, List<String> keys) {
        RedisKeyStates.useNioTransport();
        try (RedisClient client = RedisClient.create(redis.url());
             StatefulRedisConnection<String, String> c = client.connect()) {
            RedisCommands<String, String> r = c.sync();
            List<String> everything = new ArrayList<>();
            ScanCursor cursor = ScanCursor.INITIAL;
            do {
                KeyScanCursor<String> page = r.scan(cursor, ScanArgs.Builder.limit(100));
                for (String k : page.getKeys()) {
                    everything.add(k);
                    switch (r.type(k)) {
                        case "hash" -> r.hgetall(k).forEach((f, v) -> {
                            everything.add(f);
                            everything.add(v);
                        });
                        case "string" -> everything.add(r.get(k));
                        default -> everything.add("(" + r.type(k) + ")");
                    }
                }
                cursor = page;
            } while (!cursor.isFinished());
            assertFalse(everything.isEmpty(), "the states were shared");
            for (String s : everything) {
                for (String k : keys) {
                    assertFalse(s.contains(k), "a pool key in Redis: " + s.replace(k, "<KEY>"));
                }
            }
        }
    }

    /** Key 0 answers 401 from now on, and {@code p} learns it: two chats, both served by key 1. */
    /** A up, key 0 failed through it and its failure in Redis: the entry's name. */
    private static String failKeyZeroIntoRedis(ProxyUnderTest a, MockUpstream upstream, List<String> keys,
                                               StatefulRedisConnection<String, String> c) throws Exception {
        awaitUp(a);
        String entry = "megallm:{default}:key:" + sha256(keys.get(0));
        failKeyZero(a, upstream, keys);
        await(PROPAGATION_MILLIS, "the failure is in Redis", () -> "failed".equals(c.sync().hget(entry, "kind")));
        return entry;
    }

    private static void failKeyZero(ProxyUnderTest p, MockUpstream upstream, List<String> keys) throws Exception {
        upstream.on(keys.get(0), MockUpstream.json(401, "{}"));
        for (int i = 0; i < 2; i++) {
            assertEquals(200, p.chat().statusCode());
        }
    }
}
