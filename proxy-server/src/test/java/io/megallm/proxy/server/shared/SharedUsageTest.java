package io.megallm.proxy.server.shared;

import io.lettuce.core.RedisClient;
import io.lettuce.core.api.StatefulRedisConnection;
import io.megallm.proxy.key.KeyClock;
import io.megallm.proxy.server.keys.Json;
import io.megallm.proxy.server.testing.Eventually;
import io.megallm.proxy.server.testing.LocalRedis;
import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.Test;

import java.net.http.HttpRequest;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static io.megallm.proxy.server.testing.Eventually.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Contract §14, usage totals: with a real Redis and two proxies sharing it, {@code /admin/usage}
 * on either counts both instances' traffic (per key, model and client); while Redis is away an
 * instance shows its own figures and says so; what it counted meanwhile reaches the totals when
 * Redis answers again, once: not lost when an answer was lost, not counted twice.
 */
class SharedUsageTest {

    private static final String CLIENT = "ck-shared-usage-0000000000001";
    /** 3 prompt, 5 completion, 1 cached token an answer. */
    private static final String ANSWER = "{\"id\":\"x\",\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":5,"
            + "\"prompt_tokens_details\":{\"cached_tokens\":1}}}";

    private static void chat(ProxyUnderTest p, String model) throws Exception {
        int status = p.send(HttpRequest.newBuilder(p.uri("/v1/chat/completions"))
                .header("Content-Type", "application/json").header("Authorization", "Bearer " + CLIENT)
                .POST(HttpRequest.BodyPublishers.ofString("{\"model\":\"" + model + "\"}"))).statusCode();
        assertEquals(200, status);
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> usage(ProxyUnderTest p) throws Exception {
        return (Map<String, Object>) Json.parse(p.get("/admin/usage").body());
    }

    /** requests, prompt, completion, cached: summed over the rows of one part of /admin/usage. */
    @SuppressWarnings("unchecked")
    private static List<Long> sum(Map<String, Object> usage, String part) {
        long[] s = new long[4];
        for (Map<String, Object> row : (List<Map<String, Object>>) usage.get(part)) {
            s[0] += ((Number) row.get("requests")).longValue();
            s[1] += ((Number) row.get("prompt_tokens")).longValue();
            s[2] += ((Number) row.get("completion_tokens")).longValue();
            s[3] += ((Number) row.get("cached_tokens")).longValue();
        }
        return List.of(s[0], s[1], s[2], s[3]);
    }

    private static List<Long> of(long requests) {
        return List.of(requests, 3 * requests, 5 * requests, requests);
    }

    /** The same counts by key, by model and by client, over all instances. */
    private static boolean showsAll(ProxyUnderTest p, long requests) throws Exception {
        Map<String, Object> u = usage(p);
        return "all_instances".equals(u.get("scope")) && of(requests).equals(sum(u, "by_key"))
                && of(requests).equals(sum(u, "by_model")) && of(requests).equals(sum(u, "by_client"));
    }

    private static ProxyUnderTest instance(List<String> keys, LocalRedis redis, MockUpstream upstream, Path clients)
            throws Exception {
        return ProxyUnderTest.start(keys, Map.of("REDIS_URL", redis.url(), "PROXY_API_KEYS", "@" + clients),
                KeyClock.SYSTEM, null, upstream);
    }

    /** What a test does with a Redis, the mock answering ANSWER, and the client file. */
    private interface WithRedis {
        void run(LocalRedis redis, MockUpstream upstream, Path clients) throws Exception;
    }

    private static void withRedis(WithRedis test) throws Exception {
        try (LocalRedis redis = LocalRedis.start(); MockUpstream upstream = new MockUpstream()) {
            upstream.otherwise(MockUpstream.json(200, ANSWER));
            test.run(redis, upstream, clientFile());
        }
    }

    private static Path clientFile() throws Exception {
        Path file = Files.createTempDirectory("shared-usage").resolve("clients.txt");
        Files.writeString(file, CLIENT + " name=team\n");
        return file;
    }

    @Test
    void usageOnEitherInstanceCountsBoth() throws Exception {
        List<String> keys = ProxyUnderTest.keys(2);
        withRedis((redis, upstream, clients) -> {
            try (ProxyUnderTest a = instance(keys, redis, upstream, clients);
                 ProxyUnderTest b = instance(keys, redis, upstream, clients)) {
                for (int i = 0; i < 3; i++) {
                    chat(a, "gpt-4o");
                }
                chat(b, "gpt-4o");
                chat(b, "only-on-b");
                await(5000, "A's usage counts B's requests", () -> showsAll(a, 5));
                await(5000, "B's usage counts A's requests", () -> showsAll(b, 5));
                @SuppressWarnings("unchecked")
                List<Map<String, Object>> models = (List<Map<String, Object>>) usage(a).get("by_model");
                assertEquals(List.of("gpt-4o", "only-on-b"), models.stream().map(m -> m.get("model")).toList(),
                        "a model only B saw is in A's usage too");
                assertEquals(4L, ((Number) models.get(0).get("requests")).longValue());
                // What Redis holds: SHA-256 ids, in one hash under the pool's hash tag.
                try (RedisClient client = RedisClient.create(redis.url());
                     StatefulRedisConnection<String, String> c = client.connect()) {
                    String id = SharedKeyStatesTest.sha256(CLIENT);
                    assertEquals("5", c.sync().hget("megallm:{default}:usage", "c:" + id + ":requests"));
                    assertEquals("15", c.sync().hget("megallm:{default}:usage", "c:" + id + ":prompt"));
                    assertEquals("4", c.sync().hget("megallm:{default}:usage", "m:gpt-4o:requests"));
                }
                List<String> secrets = new ArrayList<>(keys);
                secrets.add(CLIENT);
                SharedKeyStatesTest.assertNoKeyInRedis(redis, secrets);
            }
        });
    }

    /**
     * Contract §10 with §14: an instance stopped right after its last requests (SIGTERM) sends their
     * usage and their limit counts to Redis before it exits, instead of losing the last batches.
     */
    @Test
    void theLastBatchesReachRedisWhenAnInstanceStops() throws Exception {
        List<String> keys = ProxyUnderTest.keys(1);
        withRedis((redis, upstream, ignored) -> {
            Path clients = Files.createTempDirectory("shared-usage").resolve("clients.txt");
            Files.writeString(clients, CLIENT + " name=team rpm=1000\n");
            RedisKeyStates.useNioTransport();
            try (RedisClient client = RedisClient.create(redis.url());
                 StatefulRedisConnection<String, String> c = client.connect()) {
                ProxyUnderTest a = instance(keys, redis, upstream, clients);
                Eventually.await(5000, "A shares", () -> "all_instances".equals(usage(a).get("scope")));
                for (int i = 0; i < 7; i++) {
                    chat(a, "m");
                }
                a.close(); // stops at once, as on SIGTERM

                String id = SharedKeyStatesTest.sha256(CLIENT);
                assertEquals("7", c.sync().hget("megallm:{default}:usage", "c:" + id + ":requests"),
                        "the usage of the last requests is in Redis");
                long counted = 0;
                for (String window : c.sync().keys("megallm:{default}:n:limit:" + id + ":rpm:*")) {
                    counted += Long.parseLong(c.sync().get(window));
                }
                assertEquals(7, counted, "the last requests count in the client's rpm window over all instances");
            }
        });
    }

    /** Garbage written into the shared totals by hand: each batch still counts once, the garbage starts again from 0. */
    @Test
    void aTotalOrASequenceThatIsNotANumberIsTakenAsAbsent() throws Exception {
        List<String> keys = ProxyUnderTest.keys(1);
        withRedis((redis, upstream, clients) -> {
            try (ProxyUnderTest a = instance(keys, redis, upstream, clients);
                 RedisClient client = RedisClient.create(redis.url());
                 StatefulRedisConnection<String, String> c = client.connect()) {
                chat(a, "m");
                await(5000, "the first batch is in", () -> showsAll(a, 1));
                String id = SharedKeyStatesTest.sha256(CLIENT);
                // A field late in the next batch, and the instance's sequence, become garbage.
                c.sync().hset("megallm:{default}:usage", "c:" + id + ":cached", "garbage");
                c.sync().hset("megallm:{default}:usage", "m:m:requests", "12.5");
                chat(a, "m");
                chat(a, "m");
                await(5000, "the model's total starts again from the two requests",
                        () -> "2".equals(c.sync().hget("megallm:{default}:usage", "m:m:requests")));
                await(5000, "the client's prompt tokens count each batch once",
                        () -> "9".equals(c.sync().hget("megallm:{default}:usage", "c:" + id + ":prompt")));
                c.sync().hset("megallm:{default}:usage:seq", c.sync().hkeys("megallm:{default}:usage:seq").get(0), "x");
                chat(a, "m");
                await(5000, "a sequence that is not a number: the next batch counts once",
                        () -> "12".equals(c.sync().hget("megallm:{default}:usage", "c:" + id + ":prompt")));
                Thread.sleep(1500); // two more batch beats: nothing may be added again
                assertEquals("12", c.sync().hget("megallm:{default}:usage", "c:" + id + ":prompt"));
                c.sync().hset("megallm:{default}:usage:seq", c.sync().hkeys("megallm:{default}:usage:seq").get(0),
                        "99999999999999");
                chat(a, "m");
                await(5000, "a sequence above this instance's own was never its own: the next batch counts",
                        () -> "15".equals(c.sync().hget("megallm:{default}:usage", "c:" + id + ":prompt")));
            }
        });
    }

    @Test
    void redisAwayShowsOwnFiguresAndCountsMeanwhileArriveOnce() throws Exception {
        List<String> keys = ProxyUnderTest.keys(1);
        withRedis((redis, upstream, clients) -> {
            try (ProxyUnderTest a = instance(keys, redis, upstream, clients);
                 ProxyUnderTest b = instance(keys, redis, upstream, clients)) {
                for (int i = 0; i < 3; i++) {
                    chat(a, "m");
                }
                chat(b, "m");
                await(5000, "both count 4", () -> showsAll(a, 4) && showsAll(b, 4));

                // Frozen: A's next batch is sent, gets no answer, and is applied when Redis thaws,
                // after A gave up on it: the case where sending it again must not count it twice.
                redis.freeze();
                try {
                    chat(a, "m");
                    chat(a, "m");
                    long counted = System.nanoTime();
                    await(8000, "A notices Redis is away", () -> "this_instance".equals(usage(a).get("scope")));
                    // The batch carrying those two goes out within a beat and gives up after the 2 s
                    // command timeout: nothing observable marks that moment, so wait it out.
                    long givenUp = counted + TimeUnit.MILLISECONDS.toNanos(SharedUsage.FLUSH_MILLIS + 2500);
                    Thread.sleep(Math.max(0, TimeUnit.NANOSECONDS.toMillis(givenUp - System.nanoTime())));
                    Map<String, Object> own = usage(a);
                    assertEquals("unavailable", own.get("shared_state"));
                    assertEquals(of(5), sum(own, "by_key"), "A alone: its own 5 requests");
                    chat(a, "m");
                } finally {
                    redis.thaw();
                }
                await(8000, "A's 3 requests made while Redis was away reach both, once",
                        () -> showsAll(a, 7) && showsAll(b, 7));

                // Restarted empty: each instance sends again everything it counted.
                redis.kill();
                await(5000, "A notices Redis is gone", () -> "this_instance".equals(usage(a).get("scope")));
                chat(b, "m");
                redis.startProcess();
                await(8000, "totals refilled from both instances", () -> showsAll(a, 8) && showsAll(b, 8));
                try (RedisClient client = RedisClient.create(redis.url());
                     StatefulRedisConnection<String, String> c = client.connect()) {
                    assertEquals("8", c.sync().hget("megallm:{default}:usage", "k:" + SharedKeyStatesTest.sha256(keys.get(0)) + ":requests"));
                }
                // Nothing left to send and nothing counted twice: two more beats change nothing.
                // (A double count has no event to await; this is its absence, over two beats.)
                Thread.sleep(2 * SharedUsage.FLUSH_MILLIS + 200);
                assertTrue(showsAll(a, 8) && showsAll(b, 8), usage(a).toString());
            }
        });
    }
}
