package io.megallm.proxy.server.shared;

import io.lettuce.core.RedisClient;
import io.lettuce.core.api.StatefulRedisConnection;
import io.megallm.proxy.key.KeyClock;
import io.megallm.proxy.server.testing.LocalRedis;
import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.Test;

import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

import static io.megallm.proxy.server.shared.SharedViews.await;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Contract §13/§14: daily_tokens is one limit over every instance, exact to within the counters'
 * batching. Found by helper-43's review: an instance that had not read a client's day window yet
 * (started later) took it as 0, so a client over its limit for minutes got a whole burst through
 * there (1 to 5 of 5 across runs). A client's token windows are now read from Redis when the
 * instance starts sharing, before its first request.
 */
class SharedDailyLimitTest {

    private static final String CLIENT = "ck-shared-daily-000000000001";

    private static int chat(ProxyUnderTest p) throws Exception {
        return p.send(HttpRequest.newBuilder(p.uri("/v1/chat/completions"))
                .header("Content-Type", "application/json").header("Authorization", "Bearer " + CLIENT)
                .POST(HttpRequest.BodyPublishers.ofString("{\"model\":\"m\"}"))).statusCode();
    }

    @Test
    void aClientOverItsDailyTokensIsRefusedByAnInstanceStartedLater() throws Exception {
        Path file = Files.createTempDirectory("shared-daily").resolve("clients.txt");
        Files.writeString(file, CLIENT + " name=daily daily_tokens=10\n");
        RedisKeyStates.useNioTransport();
        try (LocalRedis redis = LocalRedis.start(); MockUpstream upstream = new MockUpstream();
             RedisClient client = RedisClient.create(redis.url());
             StatefulRedisConnection<String, String> c = client.connect()) {
            upstream.otherwise(MockUpstream.json(200, "{\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":30}}"));
            Map<String, String> env = Map.of("REDIS_URL", redis.url(), "PROXY_API_KEYS", "@" + file);
            List<String> keys = ProxyUnderTest.keys(1);
            String[] day = new String[1];
            try (ProxyUnderTest a = ProxyUnderTest.start(keys, env, KeyClock.SYSTEM, null, upstream)) {
                assertEquals(200, chat(a));
                assertEquals(429, chat(a), "50 tokens of 10 used on A");
                await(5000, "the 50 tokens are in Redis", () -> {
                    day[0] = c.sync().keys("*:n:limit:*:day:*").stream().filter(k -> "50".equals(c.sync().get(k)))
                            .findFirst().orElse(null);
                    return day[0] != null;
                });
            }
            // A is gone: nobody reads the day window now, and Redis' idle clock for it runs.
            await(10_000, "the day window idle in Redis", () -> c.sync().objectIdletime(day[0]) >= 2);
            try (ProxyUnderTest b = ProxyUnderTest.start(keys, env, KeyClock.SYSTEM, null, upstream)) {
                await(10_000, "B shares", () -> "ok".equals(SharedViews.sharedState(b)));
                // B reads the client's day window with no request from the client yet.
                await(5000, "B reads the day window by itself", () -> c.sync().objectIdletime(day[0]) <= 1);
                int before = upstream.requestCount();
                // A burst, as an SDK's parallel calls send it.
                List<CompletableFuture<HttpResponse<String>>> burst = new ArrayList<>();
                for (int i = 0; i < 5; i++) {
                    burst.add(b.client().sendAsync(HttpRequest.newBuilder(b.uri("/v1/chat/completions"))
                            .header("Content-Type", "application/json").header("Authorization", "Bearer " + CLIENT)
                            .POST(HttpRequest.BodyPublishers.ofString("{\"model\":\"m\"}")).build(),
                            HttpResponse.BodyHandlers.ofString()));
                }
                int served = 0;
                for (CompletableFuture<HttpResponse<String>> r : burst) {
                    if (r.get().statusCode() == 200) {
                        served++;
                    }
                }
                assertEquals(0, served, "B let a client over its daily tokens send " + served + " of 5 upstream");
                assertEquals(before, upstream.requestCount());
            }
        }
    }
}
