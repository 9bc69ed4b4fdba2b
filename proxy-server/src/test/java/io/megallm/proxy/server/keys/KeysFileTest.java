package io.megallm.proxy.server.keys;

import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static io.megallm.proxy.server.testing.KeyAsserts.assertKeys;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Contract §4 and the key routes of §5, through a real proxy: a missing, empty or directory
 * keys file never stops the start; reloads keep the state of the keys that stay; keys are only
 * ever shown masked.
 */
class KeysFileTest {

    /** Every key any test here writes, so that the leak check of ProxyUnderTest covers them all. */
    private static final List<String> KEYS = ProxyUnderTest.keys(3);
    private static final String A = KEYS.get(0);
    private static final String B = KEYS.get(1);
    private static final String C = KEYS.get(2);

    @TempDir
    Path dir;

    /** A proxy whose KEYS_FILE is {@code keysFile}, in whatever state the test left it. */
    private static ProxyUnderTest start(Path keysFile) throws Exception {
        Map<String, String> env = new HashMap<>();
        env.put("KEYS_FILE", keysFile.toAbsolutePath().toString());
        return ProxyUnderTest.start(KEYS, env);
    }

    private Path keysFile(String content) throws Exception {
        Path f = dir.resolve("data/keys.txt");
        Files.createDirectories(f.getParent());
        Files.writeString(f, content, StandardCharsets.UTF_8);
        return f;
    }

    private static String lines(String... keys) {
        return String.join("\n", keys) + "\n";
    }

    static String masked(String key) {
        return key.substring(0, 8) + "…" + key.substring(key.length() - 4);
    }

    private static Map<String, Object> health(long total, long available, long failed, long cooling) {
        Map<String, Object> stats = new LinkedHashMap<>();
        stats.put("total", total);
        stats.put("available", available);
        stats.put("failed", failed);
        stats.put("cooling_down", cooling);
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("status", available > 0 ? "healthy" : "unhealthy");
        m.put("key_stats", stats);
        m.put("version", "1.0.0");
        return m;
    }

    private static void assertHealth(ProxyUnderTest p, long total, long available, long failed, long cooling)
            throws Exception {
        HttpResponse<String> r = p.get("/health");
        assertEquals(available > 0 ? 200 : 503, r.statusCode(), r.body());
        assertEquals(health(total, available, failed, cooling), Json.object(r.body()), r.body());
        assertTrue(r.headers().firstValue("content-type").orElse("").startsWith("application/json"));
    }

    private static HttpResponse<String> admin(ProxyUnderTest p, String path) throws Exception {
        return p.send(HttpRequest.newBuilder(p.uri(path)).POST(HttpRequest.BodyPublishers.noBody()));
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Map<String, Object>> keyList(ProxyUnderTest p) throws Exception {
        HttpResponse<String> r = p.get("/admin/keys");
        assertEquals(200, r.statusCode(), r.body());
        for (String k : KEYS) {
            assertFalse(r.body().contains(k), "a full key in /admin/keys");
        }
        Map<String, Object> body = Json.object(r.body());
        assertEquals(List.of("keys"), List.copyOf(body.keySet()));
        Map<String, Map<String, Object>> byMasked = new LinkedHashMap<>();
        for (Object o : (List<Object>) body.get("keys")) {
            Map<String, Object> k = Json.object(o);
            assertEquals(List.of("key", "state", "cooldown_remaining_s", "failure_reason", "recheck_in_s", "requests",
                    "failures", "last_status", "tokens"), List.copyOf(k.keySet()), r.body());
            byMasked.put((String) k.get("key"), k);
        }
        return byMasked;
    }

    private static List<String> errors(ProxyUnderTest p) {
        return p.logLines().stream().filter(l -> l.startsWith("ERROR ")).toList();
    }

    private static void assertOneCleanError(ProxyUnderTest p, String why) {
        List<String> errors = errors(p);
        assertEquals(1, errors.size(), "expected one ERROR line, got " + errors);
        String line = errors.get(0);
        assertTrue(line.contains(why), line);
        assertTrue(line.contains("0 keys"), line);
        assertFalse(line.contains("Exception"), "a stack trace or exception in " + line);
        assertFalse(line.contains("\tat ") || line.contains(" | "), "a stack trace in " + line);
    }

    // ---- start without usable keys -------------------------------------------------------------

    @Test
    void missingFileStartsUnhealthyWithOneClearError() throws Exception {
        Path f = dir.resolve("data/keys.txt");
        try (ProxyUnderTest p = start(f)) {
            assertOneCleanError(p, "does not exist");
            assertHealth(p, 0, 0, 0, 0);
            assertPicksUpKeysOnReload(p, f);
        }
    }

    @Test
    void aDeviceInPlaceOfTheFileIsRefusedNotReadForever() throws Exception {
        // /dev/zero reports size 0 and never ends: read whole, it took the heap and the start.
        Path f = dir.resolve("data/keys.txt");
        Files.createDirectories(f.getParent());
        Files.createSymbolicLink(f, Path.of("/dev/zero"));
        try (ProxyUnderTest p = start(f)) {
            assertOneCleanError(p, "is not a regular file");
            assertHealth(p, 0, 0, 0, 0);
            Files.delete(f);
            assertPicksUpKeysOnReload(p, f);
        }
    }

    @Test
    void directoryInPlaceOfTheFileStartsUnhealthyWithOneClearError() throws Exception {
        Path f = dir.resolve("data/keys.txt");
        Files.createDirectories(f);
        try (ProxyUnderTest p = start(f)) {
            assertOneCleanError(p, "is a directory");
            assertHealth(p, 0, 0, 0, 0);
            Files.delete(f);
            assertPicksUpKeysOnReload(p, f);
        }
    }

    @Test
    void emptyFileStartsUnhealthyWithOneClearError() throws Exception {
        Path f = keysFile("");
        try (ProxyUnderTest p = start(f)) {
            assertOneCleanError(p, "has no keys");
            assertHealth(p, 0, 0, 0, 0);
            assertPicksUpKeysOnReload(p, f);
        }
    }

    @Test
    void fileWithOnlyCommentsAndBlanksCountsAsEmpty() throws Exception {
        Path f = keysFile("# keys go here\n\n   \n\t\n# sk-mega-commented-out-key\n");
        try (ProxyUnderTest p = start(f)) {
            assertOneCleanError(p, "has no keys");
            assertHealth(p, 0, 0, 0, 0);
        }
    }

    @Test
    void withZeroKeysAChatRequestGets503AndNothingGoesUpstream() throws Exception {
        try (ProxyUnderTest p = start(dir.resolve("data/keys.txt"))) {
            HttpResponse<String> r = p.chat();
            assertEquals(503, r.statusCode(), r.body());
            Json.assertErrorShape(r.body());
            assertEquals(0, p.upstream.requestCount());
        }
    }

    private static void assertPicksUpKeysOnReload(ProxyUnderTest p, Path f) throws Exception {
        Files.createDirectories(f.getParent());
        Files.writeString(f, lines(A, B), StandardCharsets.UTF_8);
        HttpResponse<String> r = admin(p, "/admin/reload-keys");
        assertEquals(200, r.statusCode(), r.body());
        assertEquals(Map.of("total", 2L, "added", 2L, "removed", 0L, "kept", 0L), Json.object(r.body()));
        assertHealth(p, 2, 2, 0, 0);
        assertEquals(200, p.chat().statusCode());
    }

    // ---- reload and reset ------------------------------------------------------------------------

    @Test
    void reloadKeepsTheStateOfKeysThatStay() throws Exception {
        Path f = keysFile(lines(A, B));
        try (ProxyUnderTest p = start(f)) {
            p.upstream.on(A, MockUpstream.json(401, "{\"error\":{\"message\":\"invalid api key\"}}"));
            // Round-robin gives each key one request per round, so two requests reach A once.
            for (int i = 0; i < 2; i++) {
                HttpResponse<String> r = p.chat();
                assertEquals(200, r.statusCode(), "the request must fail over to B: " + r.body());
            }
            Map<String, Map<String, Object>> before = keyList(p);
            assertEquals("failed", before.get(masked(A)).get("state"));
            assertEquals("upstream 401", before.get(masked(A)).get("failure_reason"));
            assertEquals("available", before.get(masked(B)).get("state"));
            assertHealth(p, 2, 1, 1, 0);

            Files.writeString(f, lines(A, C), StandardCharsets.UTF_8);
            HttpResponse<String> reload = admin(p, "/admin/reload-keys");
            assertEquals(200, reload.statusCode(), reload.body());
            assertEquals(Map.of("total", 2L, "added", 1L, "removed", 1L, "kept", 1L), Json.object(reload.body()));

            Map<String, Map<String, Object>> after = keyList(p);
            assertEquals(List.of(masked(A), masked(C)), List.copyOf(after.keySet()));
            Map<String, Object> a = after.get(masked(A));
            assertEquals("failed", a.get("state"));
            assertEquals("upstream 401", a.get("failure_reason"));
            assertEquals(null, a.get("cooldown_remaining_s"));
            assertEquals(1L, a.get("requests"), "counters are kept too");
            assertEquals(1L, a.get("failures"));
            assertEquals(401L, a.get("last_status"));
            Map<String, Object> c = after.get(masked(C));
            Map<String, Object> fresh = new HashMap<>();
            fresh.put("key", masked(C));
            fresh.put("state", "available");
            fresh.put("cooldown_remaining_s", null);
            fresh.put("failure_reason", null);
            fresh.put("recheck_in_s", null);
            fresh.put("requests", 0L);
            fresh.put("failures", 0L);
            fresh.put("last_status", null);
            fresh.put("tokens", Map.of("prompt", 0L, "completion", 0L, "cached", 0L));
            assertEquals(fresh, c);
            assertHealth(p, 2, 1, 1, 0);

            HttpResponse<String> reset = admin(p, "/admin/reset-failed-keys");
            assertEquals(200, reset.statusCode(), reset.body());
            assertEquals(Map.of("reset", 1L, "total", 2L, "available", 2L), Json.object(reset.body()));
            Map<String, Object> aReset = keyList(p).get(masked(A));
            assertEquals("available", aReset.get("state"));
            assertEquals(null, aReset.get("failure_reason"));
            assertHealth(p, 2, 2, 0, 0);

            HttpResponse<String> again = admin(p, "/admin/reset-failed-keys");
            assertEquals(Map.of("reset", 0L, "total", 2L, "available", 2L), Json.object(again.body()));
        }
    }

    @Test
    void reloadOfAnUnchangedFileKeepsEverything() throws Exception {
        Path f = keysFile(lines(A, B, C));
        try (ProxyUnderTest p = start(f)) {
            HttpResponse<String> r = admin(p, "/admin/reload-keys");
            assertEquals(Map.of("total", 3L, "added", 0L, "removed", 0L, "kept", 3L), Json.object(r.body()));
        }
    }

    @Test
    void reloadWhenTheFileBecameADirectoryIs500AndLeavesThePoolAsItWas() throws Exception {
        Path f = keysFile(lines(A, B));
        try (ProxyUnderTest p = start(f)) {
            Files.delete(f);
            Files.createDirectory(f);
            HttpResponse<String> r = admin(p, "/admin/reload-keys");
            assertEquals(500, r.statusCode(), r.body());
            Json.assertErrorShape(r.body());
            assertFalse(r.body().contains(dir.toString()), "an internal path in the answer: " + r.body());
            assertHealth(p, 2, 2, 0, 0);
            assertEquals(200, p.chat().statusCode());
            assertTrue(errors(p).stream().anyMatch(l -> l.contains("is a directory")), errors(p).toString());
        }
    }

    @Test
    void reloadWhenTheFileWasRemovedIs500AndLeavesThePoolAsItWas() throws Exception {
        Path f = keysFile(lines(A, B));
        try (ProxyUnderTest p = start(f)) {
            Files.delete(f);
            HttpResponse<String> r = admin(p, "/admin/reload-keys");
            assertEquals(500, r.statusCode(), r.body());
            Json.assertErrorShape(r.body());
            assertHealth(p, 2, 2, 0, 0);
        }
    }

    @Test
    void reloadToAnEmptyFileEmptiesThePool() throws Exception {
        Path f = keysFile(lines(A, B));
        try (ProxyUnderTest p = start(f)) {
            Files.writeString(f, "", StandardCharsets.UTF_8);
            HttpResponse<String> r = admin(p, "/admin/reload-keys");
            assertEquals(200, r.statusCode(), r.body());
            assertEquals(Map.of("total", 0L, "added", 0L, "removed", 2L, "kept", 0L), Json.object(r.body()));
            assertHealth(p, 0, 0, 0, 0);
        }
    }

    // ---- file format -------------------------------------------------------------------------------

    @Test
    void malformedLineIsSkippedWithAWarningNamingItsLineNumberNotItsContent() throws Exception {
        String bad = "sk-mega-bad key-SECRETVALUE99";
        String control = "sk-mega-ctl\u0001char-SECRETVALUE77";
        Path f = keysFile("# pool\n" + A + "\n\n" + bad + "\n" + B + "\n" + control + "\n");
        try (ProxyUnderTest p = start(f)) {
            assertHealth(p, 2, 2, 0, 0);
            List<String> warnings = p.logLines().stream().filter(l -> l.startsWith("WARN ")).toList();
            assertTrue(warnings.stream().anyMatch(l -> l.contains("line 4")), warnings.toString());
            assertTrue(warnings.stream().anyMatch(l -> l.contains("line 6")), warnings.toString());
            for (String line : p.logLines()) {
                assertFalse(line.contains("SECRETVALUE"), "a malformed line's content was logged: " + line);
                assertFalse(line.contains("bad key"), line);
            }

            Files.writeString(f, A + "\n" + "sk-mega-other bad-SECRETVALUE55\n" + B + "\n", StandardCharsets.UTF_8);
            int mark = p.logLines().size();
            HttpResponse<String> r = admin(p, "/admin/reload-keys");
            assertEquals(Map.of("total", 2L, "added", 0L, "removed", 0L, "kept", 2L), Json.object(r.body()));
            List<String> reloadLines = p.logLines().subList(mark, p.logLines().size());
            assertTrue(reloadLines.stream().anyMatch(l -> l.startsWith("WARN ") && l.contains("line 2")),
                    reloadLines.toString());
            assertTrue(p.logLines().stream().noneMatch(l -> l.contains("SECRETVALUE")));
        }
    }

    @Test
    void whiteSpaceIsTrimmedDuplicatesCountOnceAndCrlfAndBomAreHandled() throws Exception {
        Path f = dir.resolve("data/keys.txt");
        Files.createDirectories(f.getParent());
        String content = "\uFEFF" + A + "\r\n  " + B + "  \r\n\t" + A + "\t\r\n# " + C + "\r\n" + B + "\r\n";
        Files.writeString(f, content, StandardCharsets.UTF_8);
        try (ProxyUnderTest p = start(f)) {
            assertHealth(p, 2, 2, 0, 0);
            assertEquals(200, p.chat().statusCode());
            assertEquals(200, p.chat().statusCode());
            List<String> seen = p.upstream.all().stream().map(MockUpstream.Received::key).sorted().toList();
            assertKeys(List.of(A, B), seen, "the upstream must see the keys exactly, without BOM, CR or blanks");
        }
    }

    @Test
    void adminKeysShowsOnlyTheMaskedForm() throws Exception {
        Path f = keysFile(lines(A, B, C));
        try (ProxyUnderTest p = start(f)) {
            assertEquals(200, p.chat().statusCode());
            Map<String, Map<String, Object>> list = keyList(p);
            assertEquals(List.of(masked(A), masked(B), masked(C)), List.copyOf(list.keySet()));
            for (String m : list.keySet()) {
                assertEquals(8 + 1 + 4, m.length(), m);
                assertTrue(m.startsWith("sk-mega-"), m);
            }
            long requests = list.values().stream().mapToLong(k -> (Long) k.get("requests")).sum();
            assertEquals(1L, requests);
            assertTrue(list.values().stream().anyMatch(k -> Long.valueOf(200).equals(k.get("last_status"))));
        }
    }

    @Test
    void aRateLimitedKeyShowsAsCoolingDownUntilReset() throws Exception {
        try (ProxyUnderTest p = start(keysFile(lines(A, B)))) {
            p.upstream.on(A, MockUpstream.json(429, "{\"error\":{\"message\":\"slow down\"}}",
                    Map.of("Retry-After", "120")));
            for (int i = 0; i < 2; i++) {
                assertEquals(200, p.chat().statusCode());
            }
            Map<String, Object> a = keyList(p).get(masked(A));
            assertEquals("cooling_down", a.get("state"));
            long left = (Long) a.get("cooldown_remaining_s");
            assertTrue(left >= 1 && left <= 120, "cooldown_remaining_s=" + left);
            assertEquals("upstream 429", a.get("failure_reason"));
            assertEquals(429L, a.get("last_status"));
            assertHealth(p, 2, 1, 0, 1);

            HttpResponse<String> reset = admin(p, "/admin/reset-failed-keys");
            assertEquals(Map.of("reset", 1L, "total", 2L, "available", 2L), Json.object(reset.body()));
            Map<String, Object> after = keyList(p).get(masked(A));
            assertEquals("available", after.get("state"));
            assertEquals(null, after.get("cooldown_remaining_s"));
        }
    }

    @Test
    void healthHasTheContractShapeAndVersion() throws Exception {
        try (ProxyUnderTest p = start(keysFile(lines(A, B, C)))) {
            HttpResponse<String> r = p.get("/health");
            assertEquals(200, r.statusCode());
            assertEquals("{\"status\":\"healthy\",\"key_stats\":{\"total\":3,\"available\":3,\"failed\":0,"
                    + "\"cooling_down\":0},\"version\":\"1.0.0\"}", r.body());
            assertHealth(p, 3, 3, 0, 0);
        }
    }

    @Test
    void aFileThatIsNotAKeyListLeavesTheWorkingPoolAsItWas() throws Exception {
        Path f = keysFile(lines(A, B));
        try (ProxyUnderTest p = start(f)) {
            byte[] binary = new byte[20_000];
            new java.util.Random(7).nextBytes(binary);
            Files.write(f, binary);
            assertEquals(500, admin(p, "/admin/reload-keys").statusCode());
            assertHealth(p, 2, 2, 0, 0);
            assertTrue(errors(p).stream().anyMatch(l -> l.contains("is not text")), errors(p).toString());

            StringBuilder text = new StringBuilder("sops:\n");
            for (int i = 0; i < 300; i++) {
                text.append("    data: ENC[AES256_GCM,data:abc").append(i).append("]\n");
            }
            text.append("mac=ENC[AES256_GCM,data:xyz]\n");
            Files.writeString(f, text.toString(), StandardCharsets.UTF_8);
            assertEquals(500, admin(p, "/admin/reload-keys").statusCode());
            assertHealth(p, 2, 2, 0, 0);
            assertTrue(errors(p).stream().anyMatch(l -> l.contains("is not a key list")), errors(p).toString());
            long skippedWarnings = p.logLines().stream().filter(l -> l.startsWith("WARN ") && l.contains("skipped")).count();
            assertEquals(0, skippedWarnings, "a refused file names none of its lines");
            for (String armoured : List.of("-----BEGIN PGP MESSAGE-----\n\njA0ECQMCabc\n=abcd\n-----END PGP MESSAGE-----\n",
                    "U2FsdGVkX19abcdefghijklmnopqrstuvwxyzABCDEFGHIJKL\nMNOPQRSTUVWXYZ0123456789abcdefghijk\n")) {
                Files.writeString(f, armoured, StandardCharsets.UTF_8);
                assertEquals(500, admin(p, "/admin/reload-keys").statusCode());
                assertHealth(p, 2, 2, 0, 0);
            }
            assertTrue(errors(p).stream().anyMatch(l -> l.contains("armoured (OpenPGP)")), errors(p).toString());
            assertTrue(errors(p).stream().anyMatch(l -> l.contains("OpenSSL-encrypted")), errors(p).toString());
            assertEquals(200, p.chat().statusCode());
        }
    }

    @Test
    void keysThatLookTheSameMaskedAreBothUsedAndNamedByTheirMaskInAWarning() throws Exception {
        String one = "sk-mega-twin-0000000000000000000aaaa1";
        String two = "sk-mega-twin-1111111111111111111aaaa1";
        Path f = keysFile(lines(one, two));
        try (ProxyUnderTest p = start(f)) {
            assertHealth(p, 2, 2, 0, 0);
            String mask = io.megallm.proxy.key.ApiKey.mask(one);
            assertEquals(mask, io.megallm.proxy.key.ApiKey.mask(two));
            assertTrue(p.logLines().stream().anyMatch(l -> l.startsWith("WARN ")
                            && l.contains("1 masked form(s) stand for more than one key (" + mask + ")")), p.logLines().toString());
        }
    }

    @Test
    void aFileOfMoreKeysThanAPoolHoldsIsRefusedWhole() throws Exception {
        Path f = dir.resolve("many.txt");
        StringBuilder b = new StringBuilder();
        for (int i = 0; i <= KeyFile.MAX_KEYS; i++) {
            b.append("sk-mega-many-").append(i).append('\n');
        }
        Files.writeString(f, b.toString(), StandardCharsets.UTF_8);
        io.megallm.proxy.key.KeyPool pool = new io.megallm.proxy.key.KeyPool(System::nanoTime);
        pool.reload(List.of(A));
        KeyFile.Outcome outcome = new KeyFile(f, pool).reload();
        assertTrue(outcome.problem().contains("more than the " + KeyFile.MAX_KEYS), outcome.problem());
        assertEquals(1, pool.keys().size(), "the pool as it was");
    }

    @Test
    void aCommentInAnotherEncodingDoesNotEmptyThePool() throws Exception {
        Path f = dir.resolve("data/keys.txt");
        Files.createDirectories(f.getParent());
        byte[] comment = "# cl\u00e9s de production\n".getBytes(StandardCharsets.ISO_8859_1);
        byte[] keys = lines(A, B).getBytes(StandardCharsets.UTF_8);
        byte[] all = new byte[comment.length + keys.length];
        System.arraycopy(comment, 0, all, 0, comment.length);
        System.arraycopy(keys, 0, all, comment.length, keys.length);
        Files.write(f, all);
        try (ProxyUnderTest p = start(f)) {
            assertHealth(p, 2, 2, 0, 0);
        }
    }
}
