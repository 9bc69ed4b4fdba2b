package io.megallm.proxy.server.shared;

import io.lettuce.core.RedisClient;
import io.lettuce.core.api.StatefulRedisConnection;
import io.lettuce.core.api.sync.RedisCommands;
import io.lettuce.core.codec.StringCodec;
import io.lettuce.core.output.StatusOutput;
import io.lettuce.core.protocol.CommandArgs;
import io.lettuce.core.protocol.CommandType;
import io.megallm.proxy.key.KeyClock;
import io.megallm.proxy.server.keys.Json;
import io.megallm.proxy.server.testing.LocalRedis;
import io.megallm.proxy.server.testing.LogCapture;
import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.Test;

import java.net.http.HttpRequest;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static io.megallm.proxy.server.testing.Eventually.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Contract §14 when Redis is reachable but answers with errors instead of doing what is asked:
 * an operator's ACL that forbids scripts, entries of the wrong type under the pool's prefix. The
 * instance says so (one line per kind of sharing, {@code /health}, {@code /metrics},
 * {@code /admin/usage} alike), goes on alone, and shares again by itself once Redis takes it.
 */
class SharedStateRefusedTest {

    private static final String CLIENT = "ck-shared-refused-00000000001";

    private static void chat(ProxyUnderTest p) throws Exception {
        int status = p.send(HttpRequest.newBuilder(p.uri("/v1/chat/completions"))
                .header("Content-Type", "application/json").header("Authorization", "Bearer " + CLIENT)
                .POST(HttpRequest.BodyPublishers.ofString("{\"model\":\"m\"}"))).statusCode();
        assertEquals(200, status);
    }

    @SuppressWarnings("unchecked")
    private static Object field(ProxyUnderTest p, String path, String name) throws Exception {
        return ((Map<String, Object>) Json.parse(p.get(path).body())).get(name);
    }

    @SuppressWarnings("unchecked")
    private static String keyState(ProxyUnderTest p, int index) throws Exception {
        Map<String, Object> body = (Map<String, Object>) Json.parse(p.get("/admin/keys").body());
        return (String) ((List<Map<String, Object>>) body.get("keys")).get(index).get("state");
    }

    /** /health, /metrics and /admin/usage say the same thing: {@code ok} or {@code unavailable}. */
    private static boolean shows(ProxyUnderTest p, String state) throws Exception {
        boolean ok = state.equals("ok");
        return state.equals(field(p, "/health", "shared_state"))
                && p.get("/metrics").body().contains("megallm_shared_state_up " + (ok ? 1 : 0))
                && state.equals(field(p, "/admin/usage", "shared_state"))
                && (ok ? "all_instances" : "this_instance").equals(field(p, "/admin/usage", "scope"));
    }

    static void acl(RedisCommands<String, String> r, String... rules) {
        CommandArgs<String, String> args = new CommandArgs<>(StringCodec.UTF8).add("SETUSER");
        for (String rule : rules) {
            args.add(rule);
        }
        assertEquals("OK", r.dispatch(CommandType.ACL, new StatusOutput<>(StringCodec.UTF8), args));
    }

    private static List<String> sharedStateLines(int mark, String text) {
        return LogCapture.since(mark).stream().filter(l -> l.contains("shared state: Redis") && l.contains(text)).toList();
    }

    @Test
    void aUserWhoseAclForbidsScriptsIsSaidOnceAndSharingComesBackWhenAllowed() throws Exception {
        Path clients = Files.createTempDirectory("shared-refused").resolve("clients.txt");
        Files.writeString(clients, CLIENT + " name=team rpm=1000\n");
        List<String> keys = ProxyUnderTest.keys(2);
        RedisKeyStates.useNioTransport();
        try (LocalRedis redis = LocalRedis.start(); MockUpstream upstream = new MockUpstream();
             RedisClient client = RedisClient.create(redis.url());
             StatefulRedisConnection<String, String> admin = client.connect()) {
            upstream.otherwise(MockUpstream.json(200, "{\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}"));
            // The operator's mistake: reads, pub/sub and the handshake, but no scripts.
            acl(admin.sync(), "limited", "on", ">s3cret-pw", "~*", "&*", "+@read", "+ping", "+hello", "+client",
                    "+subscribe", "+auth");
            Map<String, String> env = Map.of("REDIS_URL", "redis://limited:s3cret-pw@127.0.0.1:" + redis.port(),
                    "PROXY_API_KEYS", "@" + clients);
            int mark = LogCapture.size();
            try (ProxyUnderTest a = ProxyUnderTest.start(keys, env, KeyClock.SYSTEM, null, upstream);
                 ProxyUnderTest b = ProxyUnderTest.start(keys, env, KeyClock.SYSTEM, null, upstream)) {
                for (int i = 0; i < 3; i++) {
                    chat(b);
                }
                upstream.on(keys.get(0), MockUpstream.json(401, "{}"));
                for (int i = 0; i < 3; i++) {
                    chat(a);
                }
                assertEquals("failed", keyState(a, 0));
                for (ProxyUnderTest p : List.of(a, b)) {
                    await(5000, "Redis refusing the scripts shows as unavailable on " + p.port(),
                            () -> shows(p, "unavailable"));
                    assertEquals(200, p.get("/health").statusCode(), "an instance alone is still healthy");
                }
                await(5000, "one warning per kind of sharing per instance",
                        () -> sharedStateLines(mark, "refuses the").size() == 6);
                // More traffic and more beats of every kind: no line more. (B, which never met key 0,
                // must learn its failure from A.)
                for (int i = 0; i < 5; i++) {
                    chat(a);
                    Thread.sleep(300);
                }
                List<String> refused = sharedStateLines(mark, "refuses the");
                assertEquals(6, refused.size(), "once per kind and instance, not per command: " + refused);
                for (String kind : List.of("key states", "usage totals", "client limit windows")) {
                    assertEquals(2, refused.stream().filter(l -> l.contains("refuses the " + kind + " (NOPERM")
                            && l.startsWith("WARN")).count(), kind + ": " + refused);
                }
                assertTrue(LogCapture.since(mark).stream().noneMatch(l -> l.contains("s3cret-pw")),
                        "the password is in no log line");
                assertEquals("available", keyState(b, 0), "nothing shared while Redis refuses it");

                // The operator fixes the ACL: sharing comes back by itself, and what A learnt meanwhile reaches B.
                acl(admin.sync(), "limited", "+@all");
                for (ProxyUnderTest p : List.of(a, b)) {
                    await(5000, "shared again on " + p.port(), () -> {
                        chat(a);
                        return shows(p, "ok");
                    });
                }
                await(3000, "B learns the failure A found while Redis refused the key states",
                        () -> "failed".equals(keyState(b, 0)));
                await(3000, "one line per kind and instance when it is shared again",
                        () -> sharedStateLines(mark, "again; shared again").size() == 6);
            }
        }
    }

    /**
     * Redis refusing the key states refuses the trial leases too: a failed key's trial is not left
     * waiting for a lease Redis will never grant (the key dead for good), it runs as with Redis away.
     */
    @Test
    void aFailedKeysTrialRunsWhileRedisRefusesTheLeases() throws Exception {
        List<String> keys = ProxyUnderTest.keys(2);
        RedisKeyStates.useNioTransport();
        try (LocalRedis redis = LocalRedis.start(); MockUpstream upstream = new MockUpstream();
             RedisClient client = RedisClient.create(redis.url());
             StatefulRedisConnection<String, String> admin = client.connect()) {
            acl(admin.sync(), "limited", "on", ">pw", "~*", "&*", "+@read", "+ping", "+hello", "+client",
                    "+subscribe", "+auth");
            Map<String, String> env = Map.of("REDIS_URL", "redis://limited:pw@127.0.0.1:" + redis.port(),
                    "KEY_RECHECK", "2");
            ProxyUnderTest a = ProxyUnderTest.start(keys, env, KeyClock.SYSTEM, null, upstream);
            try {
                await(5000, "refused", () -> "unavailable".equals(field(a, "/health", "shared_state")));
                upstream.on(keys.get(0), MockUpstream.json(401, "{}"));
                for (int i = 0; i < 2; i++) {
                    assertEquals(200, a.chat().statusCode());
                }
                assertEquals("failed", keyState(a, 0));
                upstream.on(keys.get(0), MockUpstream.json(200, "{\"id\":\"ok\"}"));
                await(8000, "the trial ran and the key is back", () -> {
                    a.chat();
                    return "available".equals(keyState(a, 0));
                });
            } catch (Throwable t) {
                a.close();
                throw t;
            }
            // Stopping: what Redis refuses is said, not sent again and again until the drain's deadline (1.5 s).
            int mark = LogCapture.size();
            long start = System.nanoTime();
            a.close();
            long millis = (System.nanoTime() - start) / 1_000_000;
            assertTrue(millis < 1000, "stopping took " + millis + " ms");
            assertTrue(LogCapture.since(mark).stream().anyMatch(l -> l.contains("could not all be sent")
                    && l.contains("refused: NOPERM")), LogCapture.since(mark).toString());
        }
    }

    private static final String LIMITED = "ck-shared-refused-00000000002";

    private static int chat(ProxyUnderTest p, String client) throws Exception {
        return p.send(HttpRequest.newBuilder(p.uri("/v1/chat/completions"))
                .header("Content-Type", "application/json").header("Authorization", "Bearer " + client)
                .POST(HttpRequest.BodyPublishers.ofString("{\"model\":\"m\"}"))).statusCode();
    }

    /** Requests over the by_key rows of /admin/usage, when it counts every instance's; -1 otherwise. */
    @SuppressWarnings("unchecked")
    private static long allRequests(ProxyUnderTest p) throws Exception {
        Map<String, Object> u = (Map<String, Object>) Json.parse(p.get("/admin/usage").body());
        if (!"all_instances".equals(u.get("scope"))) {
            return -1;
        }
        long n = 0;
        for (Map<String, Object> row : (List<Map<String, Object>>) u.get("by_key")) {
            n += ((Number) row.get("requests")).longValue();
        }
        return n;
    }

    /** Plants entries of the wrong type where the usage totals live (as a hand in Redis would). */
    private static void spoilUsage(RedisCommands<String, String> r) {
        r.del("megallm:{default}:usage", "megallm:{default}:usage:seq");
        r.set("megallm:{default}:usage", "x");
        r.rpush("megallm:{default}:usage:seq", "x");
    }

    /**
     * Entries of the wrong type under the pool's prefix (written by hand, or by another program)
     * where a key's state, the usage totals and a client's limit window live: they are replaced by
     * the next script that writes there, so that sharing goes on, instead of every command failing
     * for good while each instance went on alone, said nothing and labelled its own totals as
     * every instance's.
     */
    @Test
    void entriesOfTheWrongTypeUnderOurPrefixAreReplacedAndSharingGoesOn() throws Exception {
        Path clients = Files.createTempDirectory("shared-refused").resolve("clients.txt");
        Files.writeString(clients, CLIENT + " name=team\n" + LIMITED + " name=limited rpm=4\n");
        List<String> keys = ProxyUnderTest.keys(2);
        RedisKeyStates.useNioTransport();
        try (LocalRedis redis = LocalRedis.start(); MockUpstream upstream = new MockUpstream();
             RedisClient client = RedisClient.create(redis.url());
             StatefulRedisConnection<String, String> admin = client.connect()) {
            upstream.otherwise(MockUpstream.json(200, "{\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}"));
            RedisCommands<String, String> r = admin.sync();
            spoilUsage(r);
            r.sadd("megallm:{default}:key:" + SharedKeyStatesTest.sha256(keys.get(0)), "x");
            long minute = System.currentTimeMillis() / 60_000;
            for (long m = minute - 1; m <= minute + 1; m++) {
                r.hset("megallm:{default}:n:limit:" + SharedKeyStatesTest.sha256(LIMITED) + ":rpm:" + m, "x", "1");
            }
            Map<String, String> env = Map.of("REDIS_URL", redis.url(), "PROXY_API_KEYS", "@" + clients);
            int mark = LogCapture.size();
            try (ProxyUnderTest a = ProxyUnderTest.start(keys, env, KeyClock.SYSTEM, null, upstream);
                 ProxyUnderTest b = ProxyUnderTest.start(keys, env, KeyClock.SYSTEM, null, upstream)) {
                for (ProxyUnderTest p : List.of(a, b)) {
                    await(5000, "shared on " + p.port(), () -> shows(p, "ok"));
                }
                // A key A finds dead is out on B too.
                upstream.on(keys.get(0), MockUpstream.json(401, "{}"));
                for (int i = 0; i < 2; i++) {
                    assertEquals(200, chat(a, CLIENT));
                }
                assertEquals("failed", keyState(a, 0));
                await(1000, "B sees key 0 failed", () -> "failed".equals(keyState(b, 0)));

                // One limit over both instances.
                for (int i = 0; i < 3; i++) {
                    assertEquals(200, chat(a, LIMITED));
                }
                int status = 200;
                int served = 0;
                long deadline = System.nanoTime() + 5_000_000_000L;
                while (System.nanoTime() < deadline) {
                    Thread.sleep(600);
                    status = chat(b, LIMITED);
                    if (status == 429) {
                        break;
                    }
                    served++;
                }
                assertEquals(429, status, "B never saw A's requests of the limited client");
                assertTrue(served <= 1, "one limit over both: at most the 4th request passes on B, " + served + " did");

                // The same totals on both, every instance's; again after the usage entries are spoilt mid-run.
                await(5000, "A and B show the same totals over all instances",
                        () -> allRequests(a) == upstream.requestCount() && allRequests(b) == upstream.requestCount());
                spoilUsage(r);
                assertEquals(200, chat(a, CLIENT));
                assertEquals(200, chat(b, CLIENT));
                await(5000, "A and B show the same totals again, refilled",
                        () -> allRequests(a) == upstream.requestCount() && allRequests(b) == upstream.requestCount());
                assertEquals("hash", r.type("megallm:{default}:usage"));
                assertTrue(LogCapture.since(mark).stream().anyMatch(l -> l.contains("lost the shared data")),
                        "the refill is said");
                assertTrue(LogCapture.since(mark).stream().noneMatch(l -> l.contains("refuses the")),
                        "nothing was refused: " + LogCapture.since(mark));
            }
        }
    }
}
