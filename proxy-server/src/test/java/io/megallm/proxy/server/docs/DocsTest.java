package io.megallm.proxy.server.docs;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import io.megallm.proxy.server.Version;
import io.megallm.proxy.server.testing.ProxyUnderTest;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URISyntaxException;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * {@code GET /openapi.json} and {@code GET /docs} (issue 3, item 6): the OpenAPI 3.1 document of
 * every route, Swagger UI served from the jar with no CDN, and a real headless Chromium that
 * renders the page (skipped where {@code /usr/bin/chromium} does not exist).
 */
class DocsTest {

    private static final String ADMIN_TOKEN = "docs-test-admin-token-0123456789";
    private static final String CLIENT_KEY = "docs-test-client-key-0123456789";
    private static final Path CHROMIUM = Path.of("/usr/bin/chromium");

    private static ProxyUnderTest proxy;

    @BeforeAll
    static void start() throws Exception {
        // Both locks on: the docs must stay public all the same.
        proxy = ProxyUnderTest.start(1, Map.of("ADMIN_TOKEN", ADMIN_TOKEN, "PROXY_API_KEYS", CLIENT_KEY));
    }

    @AfterAll
    static void stop() throws IOException {
        if (proxy != null) {
            proxy.close();
        }
    }

    // ---------------------------------------------------------------- /openapi.json

    @Test
    void openapiDocumentDescribesEveryRoute() throws Exception {
        HttpResponse<String> r = proxy.get("/openapi.json");
        assertEquals(200, r.statusCode(), r.body());
        assertTrue(contentType(r).startsWith("application/json"), contentType(r));
        assertTrue(r.headers().firstValue("cache-control").isPresent(), "Cache-Control");

        Map<String, Object> doc = map(parseJson(r.body()), "document");
        String openapi = (String) doc.get("openapi");
        assertNotNull(openapi, "openapi field");
        assertTrue(openapi.matches("3\\.1\\.\\d+"), "OpenAPI 3.1.x, was " + openapi);
        Map<String, Object> info = map(doc.get("info"), "info");
        assertEquals("1.0.0", info.get("version"));
        assertEquals(Version.VALUE, info.get("version"), "info.version is the project version");

        Map<String, Object> paths = map(doc.get("paths"), "paths");
        Map<String, List<String>> expected = new LinkedHashMap<>();
        expected.put("/v1/chat/completions", List.of("post"));
        expected.put("/v1/models", List.of("get"));
        expected.put("/v1/embeddings", List.of("post"));
        expected.put("/v1/{path}", List.of("get", "post", "put", "patch", "delete"));
        expected.put("/health", List.of("get"));
        expected.put("/admin/reload-keys", List.of("post"));
        expected.put("/admin/reset-failed-keys", List.of("post"));
        expected.put("/admin/keys", List.of("get"));
        expected.put("/metrics", List.of("get"));
        expected.put("/openapi.json", List.of("get"));
        expected.put("/docs", List.of("get"));
        for (Map.Entry<String, List<String>> e : expected.entrySet()) {
            Map<String, Object> item = map(paths.get(e.getKey()), "paths." + e.getKey());
            for (String method : e.getValue()) {
                Map<String, Object> op = map(item.get(method), e.getKey() + " " + method);
                assertNotNull(op.get("responses"), e.getKey() + " " + method + " has responses");
            }
        }

        // Chat completions: the request schema, both answer types and the proxy's own errors.
        Map<String, Object> chat = map(at(doc, "paths", "/v1/chat/completions", "post"), "chat");
        Map<String, Object> request = map(resolve(doc, at(chat, "requestBody", "content", "application/json", "schema")),
                "chat request schema");
        Map<String, Object> props = map(request.get("properties"), "chat request properties");
        assertTrue(props.keySet().containsAll(List.of("model", "messages", "stream")), props.keySet().toString());
        assertTrue(((List<?>) request.get("required")).containsAll(List.of("model", "messages")));
        Map<String, Object> ok = map(resolve(doc, at(chat, "responses", "200")), "chat 200");
        assertTrue(map(ok.get("content"), "chat 200 content").keySet()
                .containsAll(List.of("application/json", "text/event-stream")));
        for (String status : List.of("400", "401", "413", "502", "503", "504")) {
            Map<String, Object> response = map(resolve(doc, at(chat, "responses", status)), "chat " + status);
            Object schema = resolve(doc, at(response, "content", "application/json", "schema"));
            assertErrorShape(doc, schema, "chat " + status);
        }

        // /health: exactly the contract's shape, 200 and 503.
        Map<String, Object> health = map(at(doc, "paths", "/health", "get", "responses"), "health responses");
        assertTrue(health.keySet().containsAll(List.of("200", "503")), health.keySet().toString());
        Map<String, Object> healthSchema = map(resolve(doc,
                at(health, "200", "content", "application/json", "schema")), "health schema");
        assertEquals(Set.of("status", "key_stats", "version"), map(healthSchema.get("properties"), "health").keySet());
        assertEquals(Set.of("total", "available", "failed", "cooling_down"),
                map(at(healthSchema, "properties", "key_stats", "properties"), "key_stats").keySet());

        // Admin answers.
        assertEquals(Set.of("total", "added", "removed", "kept"),
                okProperties(doc, "/admin/reload-keys", "post").keySet());
        assertEquals(Set.of("reset", "total", "available"),
                okProperties(doc, "/admin/reset-failed-keys", "post").keySet());
        Map<String, Object> keyItem = map(resolve(doc,
                at(okProperties(doc, "/admin/keys", "get"), "keys", "items")), "admin keys item");
        assertEquals(Set.of("key", "state", "cooldown_remaining_s", "failure_reason", "recheck_in_s", "requests",
                "failures", "last_status", "tokens"), map(keyItem.get("properties"), "key item").keySet());
        assertNotNull(at(doc, "paths", "/metrics", "get", "responses", "200", "content", "text/plain"),
                "/metrics is text/plain");

        // Security: client keys (bearer or x-api-key) on /v1, ADMIN_TOKEN on /admin/* and /metrics.
        Map<String, Object> schemes = map(at(doc, "components", "securitySchemes"), "securitySchemes");
        assertEquals("bearer", at(schemes, "clientBearer", "scheme"));
        assertEquals("apiKey", at(schemes, "clientApiKey", "type"));
        assertEquals("header", at(schemes, "clientApiKey", "in"));
        assertEquals("x-api-key", at(schemes, "clientApiKey", "name"));
        assertEquals("bearer", at(schemes, "adminBearer", "scheme"));
        assertTrue(securityNames(chat).containsAll(List.of("clientBearer", "clientApiKey")));
        for (String admin : List.of("/admin/reload-keys", "/admin/reset-failed-keys", "/admin/keys", "/metrics")) {
            Map<String, Object> item = map(paths.get(admin), admin);
            for (Object op : item.values()) {
                assertEquals(Set.of("adminBearer"), securityNames(map(op, admin)), admin);
            }
        }
        for (String open : List.of("/health", "/docs", "/openapi.json")) {
            assertEquals(List.of(), at(doc, "paths", open, "get", "security"), open + " is public");
        }

        // A hand-written document: every $ref resolves, every operationId is unique.
        List<String> refs = new ArrayList<>();
        List<String> operationIds = new ArrayList<>();
        walk(doc, refs, operationIds);
        assertFalse(refs.isEmpty());
        for (String ref : refs) {
            assertNotNull(resolveRef(doc, ref), "unresolved $ref " + ref);
        }
        assertEquals(new HashSet<>(operationIds).size(), operationIds.size(), "duplicate operationId: " + operationIds);
    }

    // ---------------------------------------------------------------- /docs

    @Test
    void docsPageLoadsOnlyLocalFiles() throws Exception {
        HttpResponse<String> page = proxy.get("/docs");
        assertEquals(200, page.statusCode(), page.body());
        assertTrue(contentType(page).startsWith("text/html"), contentType(page));
        assertTrue(page.headers().firstValue("cache-control").isPresent(), "Cache-Control");
        String html = page.body();
        assertTrue(html.contains("id=\"swagger-ui\""), html);

        List<String> refs = new ArrayList<>();
        Matcher m = Pattern.compile("(?i)\\b(?:src|href)\\s*=\\s*\"([^\"]*)\"").matcher(html);
        while (m.find()) {
            refs.add(m.group(1));
        }
        List<String> scriptsAndStyles = new ArrayList<>();
        Matcher tags = Pattern.compile("(?i)<(script|link)\\b[^>]*>").matcher(html);
        while (tags.find()) {
            Matcher attr = Pattern.compile("(?i)\\b(?:src|href)\\s*=\\s*\"([^\"]*)\"").matcher(tags.group());
            if (attr.find()) {
                scriptsAndStyles.add(attr.group(1));
            }
        }
        assertTrue(scriptsAndStyles.size() >= 3, "page loads Swagger UI's files: " + scriptsAndStyles);
        assertFalse(html.toLowerCase().contains("http://") || html.toLowerCase().contains("https://")
                || html.contains("\"//"), "no absolute or protocol-relative URL in the page: " + html);
        for (String ref : scriptsAndStyles) {
            assertTrue(ref.startsWith("/docs/"), "script or style from this proxy's /docs/: " + ref);
        }
        List<String> required = List.of("/docs/swagger-ui.css", "/docs/swagger-ui-bundle.js",
                "/docs/swagger-ui-standalone-preset.js", "/docs/swagger-initializer.js");
        for (String need : required) {
            assertTrue(scriptsAndStyles.stream().anyMatch(r -> r.startsWith(need)), need + " in " + scriptsAndStyles);
        }

        for (String ref : refs) {
            if (ref.equals("/openapi.json")) {
                continue;
            }
            assertTrue(ref.startsWith("/docs/"), "local reference: " + ref);
            HttpResponse<byte[]> asset = proxy.client().send(HttpRequest.newBuilder(proxy.uri(ref)).GET().build(),
                    HttpResponse.BodyHandlers.ofByteArray());
            assertEquals(200, asset.statusCode(), ref);
            String type = asset.headers().firstValue("content-type").orElse("");
            String file = ref.replaceFirst("\\?.*$", "");
            if (file.endsWith(".js")) {
                assertTrue(type.startsWith("text/javascript") || type.startsWith("application/javascript"),
                        ref + ": " + type);
            } else if (file.endsWith(".css")) {
                assertTrue(type.startsWith("text/css"), ref + ": " + type);
            } else if (file.endsWith(".png")) {
                assertEquals("image/png", type, ref);
            } else {
                fail("unexpected reference " + ref);
            }
            assertTrue(asset.body().length > 0, ref + " is empty");
            assertTrue(asset.headers().firstValue("cache-control").isPresent(), ref + ": Cache-Control");
            assertEquals(String.valueOf(asset.body().length), asset.headers().firstValue("content-length").orElse(""));
        }
        assertTrue(proxy.get("/docs/swagger-ui-bundle.js").body().length() > 100_000, "the real Swagger UI bundle");

        String init = proxy.get("/docs/swagger-initializer.js").body();
        assertTrue(init.contains("url: \"/openapi.json\""), init);
        assertFalse(init.contains("http://") || init.contains("https://"), init);

        assertEquals(200, proxy.get("/docs/").statusCode());
    }

    @Test
    void docsErrorsHaveTheErrorShape() throws Exception {
        HttpResponse<String> missing = proxy.get("/docs/no-such-file.js");
        assertEquals(404, missing.statusCode());
        assertError(missing.body(), "not_found");
        // Only the files the page uses are reachable, not the rest of the class path.
        assertEquals(404, proxy.get("/docs/../megallm-proxy-version.properties").statusCode());
        assertEquals(404, proxy.get("/docs/index.css.map").statusCode());

        for (String path : List.of("/docs", "/openapi.json", "/docs/swagger-ui.css")) {
            HttpResponse<String> post = proxy.send(HttpRequest.newBuilder(proxy.uri(path))
                    .POST(HttpRequest.BodyPublishers.ofString("{}")));
            assertEquals(405, post.statusCode(), path);
            assertEquals("GET, HEAD", post.headers().firstValue("allow").orElse(""), path);
            assertError(post.body(), "method_not_allowed");
        }
    }

    @Test
    void docsArePublicWhileTheRestIsLocked() throws Exception {
        assertEquals(401, proxy.get("/v1/models").statusCode(), "PROXY_API_KEYS is on");
        assertEquals(401, proxy.get("/admin/keys").statusCode(), "ADMIN_TOKEN is on");
        assertEquals(200, proxy.get("/docs").statusCode());
        assertEquals(200, proxy.get("/openapi.json").statusCode());
        assertEquals(200, proxy.get("/docs/swagger-ui-bundle.js").statusCode());
    }

    @Test
    void headAndConditionalRequests() throws Exception {
        HttpResponse<String> get = proxy.get("/openapi.json");
        String etag = get.headers().firstValue("etag").orElseThrow();
        HttpResponse<String> again = proxy.send(HttpRequest.newBuilder(proxy.uri("/openapi.json"))
                .header("If-None-Match", etag).GET());
        assertEquals(304, again.statusCode());
        assertEquals("", again.body());

        // HEAD: the GET's headers and no body (checked on the wire, where a stray body would show).
        String raw = raw("HEAD /docs/swagger-ui.css HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        int end = raw.indexOf("\r\n\r\n");
        assertTrue(raw.startsWith("HTTP/1.1 200"), raw);
        String head = raw.substring(0, end).toLowerCase();
        assertTrue(head.contains("content-type: text/css"), head);
        int length = proxy.client().send(HttpRequest.newBuilder(proxy.uri("/docs/swagger-ui.css")).GET().build(),
                HttpResponse.BodyHandlers.ofByteArray()).body().length;
        assertTrue(head.contains("content-length: " + length), head);
        assertEquals(end + 4, raw.length(), "no body after a HEAD answer");
    }

    // ---------------------------------------------------------------- a real browser

    @Test
    @Timeout(value = 4, unit = TimeUnit.MINUTES)
    void chromiumRendersTheSwaggerUi() throws Exception {
        assumeTrue(Files.isExecutable(CHROMIUM), "no " + CHROMIUM + " here: browser test skipped");
        String url = proxy.uri("/docs").toString();

        Browser dom = chromium("--dump-dom", url);
        assertEquals(0, dom.exitCode, "chromium --dump-dom failed: " + dom.stderr);
        String html = dom.stdout;
        assertTrue(html.contains("/v1/chat/completions"), "rendered page lists /v1/chat/completions:\n" + html);
        assertTrue(html.contains("opblock"), "Swagger UI rendered its operations:\n" + html);
        assertTrue(html.contains("class=\"swagger-ui\""), "Swagger UI's root:\n" + html);
        for (String path : List.of("/v1/models", "/v1/embeddings", "/health", "/admin/keys", "/metrics")) {
            assertTrue(html.contains("data-path=\"" + path + "\""), path + " rendered");
        }
        assertTrue(html.contains("OAS 3.1"), "Swagger UI read the document as OpenAPI 3.1");
        assertFalse(html.contains("errors-wrapper"), "Swagger UI shows no errors");

        Path png = targetDir().resolve("docs-screenshot.png");
        Files.deleteIfExists(png);
        Browser shot = chromium("--screenshot=" + png, url);
        assertEquals(0, shot.exitCode, "chromium --screenshot failed: " + shot.stderr);
        assertTrue(Files.isRegularFile(png), "screenshot at " + png + "\n" + shot.stderr);
        assertTrue(Files.size(png) > 30_000, "a rendered page, not a blank one: " + Files.size(png) + " bytes");
        BufferedImage image = ImageIO.read(png.toFile());
        assertNotNull(image, "a PNG");
        assertEquals(1280, image.getWidth());
        Set<Integer> colours = new HashSet<>();
        for (int y = 0; y < image.getHeight(); y += 7) {
            for (int x = 0; x < image.getWidth(); x += 7) {
                colours.add(image.getRGB(x, y));
            }
        }
        assertTrue(colours.size() > 50, "a styled page has many colours, found " + colours.size());
        System.out.println("docs screenshot: " + png.toAbsolutePath());
    }

    private record Browser(int exitCode, String stdout, String stderr) {
    }

    /** One headless Chromium run, bounded in time; every external host name fails to resolve. */
    private static Browser chromium(String... args) throws IOException, InterruptedException {
        Path profile = Files.createTempDirectory("docs-chromium");
        Path out = Files.createTempFile("docs-chromium", ".out");
        Path err = Files.createTempFile("docs-chromium", ".err");
        List<String> command = new ArrayList<>(List.of(CHROMIUM.toString(),
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--hide-scrollbars",
                // Offline: only the proxy on loopback can be reached (a CDN would fail to load).
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                "--user-data-dir=" + profile, "--virtual-time-budget=15000", "--window-size=1280,1800"));
        command.addAll(List.of(args));
        Process process = new ProcessBuilder(command)
                .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
                .redirectOutput(out.toFile())
                .redirectError(err.toFile())
                .start();
        try {
            if (!process.waitFor(90, TimeUnit.SECONDS)) {
                process.descendants().forEach(ProcessHandle::destroyForcibly);
                process.destroyForcibly();
                process.waitFor(10, TimeUnit.SECONDS);
                fail("chromium did not finish within 90 s: " + tail(Files.readString(err)));
            }
            return new Browser(process.exitValue(), Files.readString(out), tail(Files.readString(err)));
        } finally {
            process.descendants().forEach(ProcessHandle::destroyForcibly);
            deleteTree(profile);
            Files.deleteIfExists(out);
            Files.deleteIfExists(err);
        }
    }

    /** {@code proxy-server/target}: found from this class's location (target/test-classes), else the working dir. */
    private static Path targetDir() throws URISyntaxException, IOException {
        Path classes = Path.of(DocsTest.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        Path target = classes.getParent();
        if (target == null || !target.getFileName().toString().equals("target")) {
            Path cwd = Path.of("").toAbsolutePath();
            target = cwd.getFileName() != null && cwd.getFileName().toString().equals("target")
                    ? cwd : cwd.resolve("target");
        }
        Files.createDirectories(target);
        return target;
    }

    private static String tail(String s) {
        return s.length() > 4000 ? "…" + s.substring(s.length() - 4000) : s;
    }

    private static void deleteTree(Path root) {
        try (Stream<Path> files = Files.walk(root)) {
            files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException ignored) {
            // A temp profile left behind is harmless.
        }
    }

    // ---------------------------------------------------------------- helpers

    private static String raw(String request) throws IOException {
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress("127.0.0.1", proxy.port()), 5000);
            s.setSoTimeout(10_000);
            s.getOutputStream().write(request.getBytes(StandardCharsets.ISO_8859_1));
            s.getOutputStream().flush();
            InputStream in = s.getInputStream();
            ByteArrayOutputStream buf = new ByteArrayOutputStream();
            in.transferTo(buf);
            return buf.toString(StandardCharsets.ISO_8859_1);
        }
    }

    private static String contentType(HttpResponse<?> r) {
        return r.headers().firstValue("content-type").orElse("");
    }

    private static void assertError(String body, String code) {
        Map<String, Object> error = map(map(parseJson(body), "error body").get("error"), "error");
        assertEquals(Set.of("message", "type", "code"), error.keySet(), body);
        assertEquals(code, error.get("code"), body);
    }

    private static void assertErrorShape(Map<String, Object> doc, Object schemaNode, String what) {
        Map<String, Object> schema = map(resolve(doc, schemaNode), what);
        Map<String, Object> error = map(resolve(doc, at(schema, "properties", "error")), what + " .error");
        assertEquals(Set.of("message", "type", "code"), map(error.get("properties"), what).keySet(), what);
        assertEquals(List.of("error"), schema.get("required"), what);
    }

    private static Map<String, Object> okProperties(Map<String, Object> doc, String path, String method) {
        Object schema = resolve(doc, at(doc, "paths", path, method, "responses", "200", "content",
                "application/json", "schema"));
        return map(map(schema, path).get("properties"), path + " properties");
    }

    private static Set<String> securityNames(Map<String, Object> op) {
        Set<String> names = new HashSet<>();
        for (Object requirement : (List<?>) op.get("security")) {
            names.addAll(map(requirement, "security requirement").keySet());
        }
        return names;
    }

    /** Follows a chain of keys; fails with the path when one is missing. */
    private static Object at(Object node, String... keys) {
        Object current = node;
        StringBuilder where = new StringBuilder();
        for (String key : keys) {
            where.append('/').append(key);
            current = map(current, where.toString()).get(key);
            assertNotNull(current, "missing " + where);
        }
        return current;
    }

    private static Object resolve(Map<String, Object> doc, Object node) {
        Object current = node;
        for (int i = 0; i < 10 && current instanceof Map<?, ?> m && m.get("$ref") instanceof String ref; i++) {
            current = resolveRef(doc, ref);
            assertNotNull(current, "unresolved $ref " + ref);
        }
        return current;
    }

    private static Object resolveRef(Map<String, Object> doc, String ref) {
        if (!ref.startsWith("#/")) {
            return null;
        }
        Object current = doc;
        for (String part : ref.substring(2).split("/")) {
            if (!(current instanceof Map<?, ?> m)) {
                return null;
            }
            current = m.get(part.replace("~1", "/").replace("~0", "~"));
        }
        return current;
    }

    private static void walk(Object node, List<String> refs, List<String> operationIds) {
        if (node instanceof Map<?, ?> m) {
            for (Map.Entry<?, ?> e : m.entrySet()) {
                if (e.getKey().equals("$ref") && e.getValue() instanceof String s) {
                    refs.add(s);
                } else if (e.getKey().equals("operationId") && e.getValue() instanceof String s) {
                    operationIds.add(s);
                }
                walk(e.getValue(), refs, operationIds);
            }
        } else if (node instanceof List<?> l) {
            for (Object o : l) {
                walk(o, refs, operationIds);
            }
        }
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> map(Object node, String what) {
        assertTrue(node instanceof Map, what + " is a JSON object: " + node);
        return (Map<String, Object>) node;
    }

    /** A JSON value read with jackson-core's streaming parser; duplicate keys and trailing data fail. */
    static Object parseJson(String text) {
        JsonFactory factory = JsonFactory.builder().enable(com.fasterxml.jackson.core.StreamReadFeature
                .STRICT_DUPLICATE_DETECTION).build();
        try (JsonParser p = factory.createParser(text)) {
            assertNotNull(p.nextToken(), "empty JSON");
            Object value = read(p);
            assertEquals(null, p.nextToken(), "trailing content after the JSON value");
            return value;
        } catch (IOException e) {
            throw new AssertionError("not JSON: " + e.getMessage(), e);
        }
    }

    private static Object read(JsonParser p) throws IOException {
        JsonToken t = p.currentToken();
        switch (t) {
            case START_OBJECT -> {
                Map<String, Object> m = new LinkedHashMap<>();
                while (p.nextToken() == JsonToken.FIELD_NAME) {
                    String name = p.currentName();
                    p.nextToken();
                    m.put(name, read(p));
                }
                return m;
            }
            case START_ARRAY -> {
                List<Object> l = new ArrayList<>();
                while (p.nextToken() != JsonToken.END_ARRAY) {
                    l.add(read(p));
                }
                return l;
            }
            case VALUE_STRING -> {
                return p.getText();
            }
            case VALUE_NUMBER_INT -> {
                return p.getLongValue();
            }
            case VALUE_NUMBER_FLOAT -> {
                return p.getDoubleValue();
            }
            case VALUE_TRUE -> {
                return true;
            }
            case VALUE_FALSE -> {
                return false;
            }
            case VALUE_NULL -> {
                return null;
            }
            default -> throw new AssertionError("unexpected JSON token " + t);
        }
    }
}
