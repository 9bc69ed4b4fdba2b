package io.megallm.proxy.server.shared;

import io.lettuce.core.RedisClient;
import io.lettuce.core.api.StatefulRedisConnection;
import io.lettuce.core.api.sync.RedisCommands;
import io.megallm.proxy.key.KeyClock;
import io.megallm.proxy.server.testing.LocalRedis;
import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.Test;

import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Contract §14: a client's limit is one limit over every instance sharing a Redis, not one per
 * instance; exact to within the counters' batching (about a second), and Redis holds no client key.
 */
class SharedClientLimitsTest {

    private static final String CLIENT = "ck-shared-limits-000000000001";

    private static int chat(ProxyUnderTest p) throws Exception {
        return p.send(HttpRequest.newBuilder(p.uri("/v1/chat/completions"))
                .header("Content-Type", "application/json").header("Authorization", "Bearer " + CLIENT)
                .POST(HttpRequest.BodyPublishers.ofString("{\"model\":\"m\"}"))).statusCode();
    }

    @Test
    void rpmIsOneLimitOverTwoInstances() throws Exception {
        Path dir = Files.createTempDirectory("shared-clients");
        Path file = dir.resolve("clients.txt");
        Files.writeString(file, CLIENT + " name=shared rpm=4\n");
        try (LocalRedis redis = LocalRedis.start(); MockUpstream upstream = new MockUpstream()) {
            upstream.otherwise(MockUpstream.json(200, "{\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}"));
            Map<String, String> env = Map.of("REDIS_URL", redis.url(), "PROXY_API_KEYS", "@" + file);
            List<String> keys = ProxyUnderTest.keys(1);
            try (ProxyUnderTest a = ProxyUnderTest.start(keys, env, KeyClock.SYSTEM, null, upstream);
                 ProxyUnderTest b = ProxyUnderTest.start(keys, env, KeyClock.SYSTEM, null, upstream)) {
                assertEquals(200, chat(a));
                assertEquals(200, chat(a));
                assertEquals(200, chat(a));
                int seen = upstream.requestCount();
                // B learns A's three within the batching (0.5 s beats); poll, bounded.
                int status = 200;
                long deadline = System.nanoTime() + 5_000_000_000L;
                int served = 0;
                while (System.nanoTime() < deadline) {
                    Thread.sleep(600);
                    status = chat(b);
                    if (status == 429) {
                        break;
                    }
                    served++;
                }
                assertEquals(429, status, "B never saw A's requests");
                assertTrue(served <= 1, "one limit over both: at most the 4th request passes on B, " + served + " did");
                assertEquals(seen + served, upstream.requestCount(), "nothing sent for the refused request");
                SharedKeyStatesTest.assertNoKeyInRedis(redis, List.of(CLIENT));
            }
        }
    }

    /** What a test does with one instance whose client file holds {@code CLIENT} and the line's limits. */
    private interface WithRedis {
        void run(ProxyUnderTest p, RedisCommands<String, String> redis) throws Exception;
    }

    private static void oneInstance(String limits, WithRedis test) throws Exception {
        Path file = Files.createTempDirectory("shared-clients").resolve("clients.txt");
        Files.writeString(file, CLIENT + " " + limits + "\n");
        try (LocalRedis redis = LocalRedis.start(); MockUpstream upstream = new MockUpstream()) {
            upstream.otherwise(MockUpstream.json(200, "{\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}"));
            Map<String, String> env = Map.of("REDIS_URL", redis.url(), "PROXY_API_KEYS", "@" + file);
            RedisKeyStates.useNioTransport();
            try (ProxyUnderTest p = ProxyUnderTest.start(ProxyUnderTest.keys(1), env, KeyClock.SYSTEM, null, upstream);
                 RedisClient client = RedisClient.create(redis.url());
                 StatefulRedisConnection<String, String> c = client.connect()) {
                test.run(p, c.sync());
            }
        }
    }

    /** The keys matching {@code pattern} once there are {@code atLeast}: counters reach Redis in batches (about a second). */
    private static List<String> awaitKeys(RedisCommands<String, String> r, String pattern, int atLeast) throws Exception {
        List<String> found = List.of();
        for (int i = 0; i < 100 && found.size() < atLeast; i++) {
            Thread.sleep(100);
            found = r.keys(pattern);
        }
        return found;
    }

    /** Every window a limit counts in Redis ends there too (README: minutes for rpm/tpm, two days for a day). */
    @Test
    void everyLimitWindowInRedisHasALifetime() throws Exception {
        oneInstance("name=windows rpm=100 tpm=100000 daily_tokens=1000000", (p, r) -> {
            for (int i = 0; i < 3; i++) {
                assertEquals(200, chat(p));
            }
            List<String> windows = awaitKeys(r, "*:n:*", 3);
            assertTrue(windows.stream().anyMatch(k -> k.contains(":tpm:")), windows.toString());
            assertTrue(windows.stream().anyMatch(k -> k.contains(":day:")), windows.toString());
            for (String k : windows) {
                assertTrue(r.pttl(k) > 0, k + " has no lifetime in Redis");
            }
        });
    }

    /** A hand in Redis that sets a window below zero, or to something not a count, lets no one past the limit. */
    @Test
    void aWindowSetBelowZeroOrToGarbageInRedisStartsAgainFromZero() throws Exception {
        oneInstance("name=forged rpm=3", (p, r) -> {
            assertEquals(200, chat(p));
            List<String> windows = awaitKeys(r, "*:rpm:*", 1);
            assertEquals(1, windows.size(), windows.toString());
            r.set(windows.get(0), "-100");
            int served = 0;
            for (int i = 0; i < 8; i++) {
                Thread.sleep(300); // past the counters' batching, so the forged value is read
                if (chat(p) == 200) {
                    served++;
                }
            }
            // The forged entry is read as 0, so what it held is forgotten (the first request, and
            // an increment batched when it was written): one or two more than rpm=3 may pass. The
            // old script let every one of the 8 through (-100 + 8 < 3).
            assertTrue(served <= 4, "rpm=3 held against a forged negative window: " + served + " served");
        });
    }
}
