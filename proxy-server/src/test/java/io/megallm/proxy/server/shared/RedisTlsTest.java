package io.megallm.proxy.server.shared;

import io.megallm.proxy.key.KeyClock;
import io.megallm.proxy.server.keys.Json;
import io.megallm.proxy.server.testing.LocalRedis;
import io.megallm.proxy.server.testing.LogCapture;
import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static io.megallm.proxy.server.shared.SharedViews.sharedState;
import static io.megallm.proxy.server.testing.Eventually.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Contract §3/§14: {@code REDIS_URL=rediss://:<password>@host:port} against a real redis-server
 * that speaks TLS only (a self-signed certificate made here, trusted through REDIS_CA_FILE) and
 * asks for a password: the instances share state through it; a wrong password is one clear log
 * line and {@code "shared_state":"unavailable"}, and no password is ever logged.
 */
class RedisTlsTest {

    private static final String PASSWORD = "s3cret-redis-pass-7731";
    private static Path dir;
    private static Path cert;
    private static Path key;

    @BeforeAll
    static void certificate() throws Exception {
        dir = Files.createTempDirectory("redis-tls");
        cert = dir.resolve("redis.crt");
        key = dir.resolve("redis.key");
        Process openssl;
        try {
            openssl = new ProcessBuilder("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", key.toString(), "-out", cert.toString())
                    .redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
        } catch (java.io.IOException e) {
            assumeTrue(false, "openssl is not installed: " + e.getMessage());
            return;
        }
        assumeTrue(openssl.waitFor(60, TimeUnit.SECONDS) && openssl.exitValue() == 0, "openssl made no certificate");
    }

    @SuppressWarnings("unchecked")
    private static Object state(ProxyUnderTest p, int index) throws Exception {
        Map<String, Object> body = (Map<String, Object>) Json.parse(p.get("/admin/keys").body());
        return ((List<Map<String, Object>>) body.get("keys")).get(index).get("state");
    }

    private static ProxyUnderTest instance(List<String> keys, String url, MockUpstream upstream) throws Exception {
        return ProxyUnderTest.start(keys, Map.of("REDIS_URL", url, "REDIS_CA_FILE", cert.toString()),
                KeyClock.SYSTEM, null, upstream);
    }

    @Test
    void tlsWithAPasswordSharesState() throws Exception {
        List<String> keys = ProxyUnderTest.keys(2);
        int mark = LogCapture.size();
        try (LocalRedis redis = LocalRedis.startTls(cert, key, PASSWORD); MockUpstream upstream = new MockUpstream();
             ProxyUnderTest a = instance(keys, redis.url(), upstream);
             ProxyUnderTest b = instance(keys, redis.url(), upstream)) {
            assertTrue(redis.url().startsWith("rediss://:" + PASSWORD + "@"));
            for (ProxyUnderTest p : List.of(a, b)) {
                await(10_000, "shared_state ok over TLS on " + p.port(), () -> "ok".equals(sharedState(p)));
            }
            upstream.on(keys.get(0), MockUpstream.json(401, "{}"));
            for (int i = 0; i < 2; i++) {
                assertEquals(200, a.chat().statusCode());
            }
            await(1000, "B learns over TLS that key 0 is dead", () -> "failed".equals(state(b, 0)));
            assertTrue(LogCapture.since(mark).stream().anyMatch(l -> l.contains("rediss://***@127.0.0.1:" + redis.port())),
                    "the URL is logged masked");
        }
        assertNoPassword(mark, PASSWORD);
    }

    @Test
    void aWrongPasswordIsOneClearLineAndUnavailable() throws Exception {
        String wrong = "wrong-pass-55";
        int mark = LogCapture.size();
        try (LocalRedis redis = LocalRedis.startTls(cert, key, PASSWORD); MockUpstream upstream = new MockUpstream();
             ProxyUnderTest a = instance(ProxyUnderTest.keys(1),
                     "rediss://:" + wrong + "@127.0.0.1:" + redis.port(), upstream)) {
            await(10_000, "a warning", () -> !warnings(mark).isEmpty());
            String line = warnings(mark).get(0);
            assertTrue(line.contains("rediss://***@127.0.0.1:" + redis.port()) && line.contains("WRONGPASS"), line);
            assertEquals("unavailable", sharedState(a));
            assertEquals(200, a.get("/health").statusCode(), "an instance alone is still healthy");
            assertEquals(200, a.chat().statusCode(), "and serves");
            // It keeps trying (every 2 s at most) without saying so again: no event marks a retry,
            // so give it two.
            Thread.sleep(4500);
            assertEquals(1, warnings(mark).size(), "one line, not one per attempt: " + warnings(mark));
            assertEquals("unavailable", sharedState(a));
        }
        assertNoPassword(mark, wrong);
        assertNoPassword(mark, PASSWORD);
    }

    private static List<String> warnings(int mark) {
        return LogCapture.since(mark).stream().filter(l -> l.contains("shared state: Redis") && l.contains("unavailable"))
                .toList();
    }

    private static void assertNoPassword(int mark, String password) {
        for (String l : LogCapture.since(mark)) {
            assertFalse(l.contains(password), "a Redis password in the log: " + l.replace(password, "<PASSWORD>"));
        }
    }
}
