package io.megallm.proxy.server.dashboard;

import io.megallm.proxy.key.ApiKey;
import io.megallm.proxy.server.testing.ProxyUnderTest;
import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.WebSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Issue 13: the dashboard in a real headless Chromium, driven over the DevTools protocol (a
 * WebSocket from the JDK's own client): it shows the keys and the usage of a proxy that served
 * requests, its Reset button brings a failed key back, and a screenshot is saved for a person to
 * look at (target/dashboard-screenshot.png). The page runs under its strict CSP the whole time.
 */
class DashboardBrowserTest {

    private static final Path CHROMIUM = Path.of("/usr/bin/chromium");
    private static final String USAGE = "{\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":38}}";

    @Test
    @Timeout(value = 3, unit = TimeUnit.MINUTES)
    void theDashboardShowsKeysAndUsageAndItsResetBringsAFailedKeyBack() throws Exception {
        assumeTrue(Files.isExecutable(CHROMIUM), "no " + CHROMIUM + " here: browser test skipped");
        try (ProxyUnderTest p = ProxyUnderTest.start(2, Map.of("KEY_RECHECK", "0"))) {
            p.upstream.on(p.keys.get(0), MockUpstream.json(401, "{\"error\":{\"message\":\"no\"}}"));
            p.upstream.on(p.keys.get(1), MockUpstream.json(200, USAGE));
            for (int i = 0; i < 3; i++) {
                assertEquals(200, p.chat().statusCode());
            }
            String failed = ApiKey.mask(p.keys.get(0));
            try (Browser b = Browser.start()) {
                b.navigate(p.uri("/admin/").toString());
                String keys = b.awaitText("document.getElementById('keys').innerText", t -> t.contains("failed"));
                assertTrue(keys.contains(failed) && keys.contains("upstream 401"), keys);
                assertTrue(keys.contains("36 / 114"), "tokens of the key that answered: " + keys);
                String byModel = b.awaitText("document.getElementById('by-model').innerText", t -> t.contains("gpt-4o"));
                assertTrue(byModel.contains("36"), byModel);

                b.evaluate("document.getElementById('reset').click()");
                String after = b.awaitText("document.getElementById('keys').innerText", t -> !t.contains("failed"));
                assertTrue(after.contains(failed), after);
                assertTrue(b.awaitText("document.getElementById('message').innerText", t -> t.startsWith("Reset"))
                        .contains("Reset 1 keys"));

                // Beside the test classes: proxy-server/target/dashboard-screenshot.png.
                Path classes = Path.of(DashboardBrowserTest.class.getProtectionDomain().getCodeSource().getLocation().toURI());
                Path png = classes.getParent().resolve("dashboard-screenshot.png");
                Files.write(png, b.screenshot());
                assertTrue(Files.size(png) > 10_000, "a rendered page: " + Files.size(png) + " bytes");
                System.out.println("dashboard screenshot: " + png);
            }
            assertEquals("available", p.server.keys().keys().get(0).state().kind().name().toLowerCase());
        }
    }

    /** One headless Chromium with one page, driven over the DevTools WebSocket. */
    private static final class Browser implements AutoCloseable, WebSocket.Listener {
        private final Process process;
        private final Path profile;
        private final WebSocket socket;
        private final AtomicInteger ids = new AtomicInteger();
        private final Map<Integer, CompletableFuture<String>> pending = new ConcurrentHashMap<>();
        private final StringBuilder partial = new StringBuilder();

        private Browser(Process process, Path profile, String pageSocket) throws Exception {
            this.process = process;
            this.profile = profile;
            this.socket = HttpClient.newHttpClient().newWebSocketBuilder()
                    .buildAsync(URI.create(pageSocket), this).get(30, TimeUnit.SECONDS);
        }

        static Browser start() throws Exception {
            Path profile = Files.createTempDirectory("dashboard-chromium");
            Process process = new ProcessBuilder(CHROMIUM.toString(), "--headless", "--no-sandbox", "--disable-gpu",
                    "--no-first-run", "--disable-extensions", "--window-size=1280,900",
                    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                    "--user-data-dir=" + profile, "--remote-debugging-port=0", "about:blank")
                    .redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
            BufferedReader err = new BufferedReader(new InputStreamReader(process.getErrorStream(), StandardCharsets.UTF_8));
            String port = null;
            for (String line; port == null && (line = err.readLine()) != null; ) {
                Matcher m = Pattern.compile("DevTools listening on ws://127\\.0\\.0\\.1:(\\d+)/").matcher(line);
                if (m.find()) {
                    port = m.group(1);
                }
            }
            assertTrue(port != null, "chromium did not open its DevTools port");
            // Keep reading its log so that it never blocks on a full pipe.
            CompletableFuture.runAsync(() -> err.lines().forEach(l -> { }));
            String list = HttpClient.newHttpClient().send(HttpRequest.newBuilder(
                    URI.create("http://127.0.0.1:" + port + "/json/list")).build(), HttpResponse.BodyHandlers.ofString()).body();
            Matcher page = Pattern.compile("\"type\"\\s*:\\s*\"page\"[^}]*?\"webSocketDebuggerUrl\"\\s*:\\s*\"([^\"]+)\"|"
                    + "\"webSocketDebuggerUrl\"\\s*:\\s*\"([^\"]+)\"[^}]*?\"type\"\\s*:\\s*\"page\"", Pattern.DOTALL).matcher(list);
            assertTrue(page.find(), "no page target: " + list);
            return new Browser(process, profile, page.group(1) != null ? page.group(1) : page.group(2));
        }

        String call(String method, String params) throws Exception {
            int id = ids.incrementAndGet();
            CompletableFuture<String> answer = new CompletableFuture<>();
            pending.put(id, answer);
            socket.sendText("{\"id\":" + id + ",\"method\":\"" + method + "\",\"params\":" + params + "}", true)
                    .get(10, TimeUnit.SECONDS);
            return answer.get(30, TimeUnit.SECONDS);
        }

        void navigate(String url) throws Exception {
            call("Page.navigate", "{\"url\":\"" + url + "\"}");
        }

        String evaluate(String expression) throws Exception {
            String r = call("Runtime.evaluate", "{\"expression\":" + quote(expression) + ",\"returnByValue\":true}");
            Matcher m = Pattern.compile("\"value\"\\s*:\\s*\"((?:[^\"\\\\]|\\\\.)*)\"").matcher(r);
            return m.find() ? unescape(m.group(1)) : "";
        }

        /** Polls an expression until its text passes (the page refreshes every 5 s), bounded. */
        String awaitText(String expression, java.util.function.Predicate<String> done) throws Exception {
            String text = "";
            for (int i = 0; i < 200; i++) {
                text = evaluate("(function(){try{return " + expression + ";}catch(e){return '';}})()");
                if (done.test(text)) {
                    return text;
                }
                Thread.sleep(100);
            }
            throw new AssertionError("page never showed what was awaited; last: " + text);
        }

        byte[] screenshot() throws Exception {
            String r = call("Page.captureScreenshot", "{\"format\":\"png\"}");
            Matcher m = Pattern.compile("\"data\"\\s*:\\s*\"([^\"]+)\"").matcher(r);
            assertTrue(m.find(), "no screenshot in " + r.substring(0, Math.min(200, r.length())));
            return Base64.getDecoder().decode(m.group(1));
        }

        @Override
        public CompletionStage<?> onText(WebSocket webSocket, CharSequence data, boolean last) {
            partial.append(data);
            if (last) {
                String message = partial.toString();
                partial.setLength(0);
                Matcher m = Pattern.compile("^\\{\"id\":(\\d+)").matcher(message);
                if (m.find()) {
                    CompletableFuture<String> f = pending.remove(Integer.parseInt(m.group(1)));
                    if (f != null) {
                        f.complete(message);
                    }
                }
            }
            webSocket.request(1);
            return null;
        }

        private static String quote(String s) {
            return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
        }

        private static String unescape(String s) {
            return s.replace("\\n", "\n").replace("\\t", "\t").replace("\\\"", "\"").replace("\\u2026", "…")
                    .replace("\\\\", "\\");
        }

        @Override
        public void close() throws Exception {
            socket.abort();
            process.destroy();
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                process.destroyForcibly();
            }
            try (var files = Files.walk(profile)) {
                files.sorted(java.util.Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
            }
        }
    }
}
