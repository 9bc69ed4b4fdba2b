package io.megallm.proxy.server.testing;

import io.megallm.proxy.key.KeyClock;
import io.megallm.proxy.server.ProxyServer;
import io.megallm.proxy.server.config.ConfigError;
import io.megallm.proxy.server.config.ConfigLoader;
import io.megallm.proxy.testing.MockUpstream;
import io.megallm.proxy.transport.Transport;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A real proxy on an ephemeral loopback port in front of a {@link MockUpstream}, configured
 * through the same loader as the program (environment map + working directory). On close it
 * checks that no pool key appeared in full in anything the proxy logged.
 */
public final class ProxyUnderTest implements AutoCloseable {

    public final MockUpstream upstream;
    public final ProxyServer server;
    public final Path workDir;
    public final List<String> keys;
    private final int logMark;
    private final Map<String, String> env;
    private boolean ownsUpstream = true;
    private final HttpClient http = HttpClient.newBuilder()
            .version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(5))
            .build();

    private ProxyUnderTest(MockUpstream upstream, ProxyServer server, Path workDir, List<String> keys, int logMark,
                           Map<String, String> env) {
        this.env = env;
        this.upstream = upstream;
        this.server = server;
        this.workDir = workDir;
        this.keys = keys;
        this.logMark = logMark;
    }

    /** Keys that look like MegaLLM keys: distinct, long enough that the masked form hides them. */
    public static List<String> keys(int n) {
        List<String> keys = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            keys.add("sk-mega-test" + i + "-" + "abcdefghijklmnopqrstuvwxyz".substring(i % 20, i % 20 + 6) + "SECRET" + i + "xyz" + i);
        }
        return keys;
    }

    public static ProxyUnderTest start(int keyCount, Map<String, String> env) throws Exception {
        return start(keys(keyCount), env);
    }

    public static ProxyUnderTest start(List<String> keys, Map<String, String> env) throws Exception {
        return start(keys, env, KeyClock.SYSTEM, null);
    }

    /**
     * {@code clock}: the key pool's clocks (a {@link ManualKeyClock} lets rests and trials pass
     * without sleeping); {@code workDir}: an earlier proxy's folder to start again in (its state
     * file included), or null for a new one.
     */
    public static ProxyUnderTest start(List<String> keys, Map<String, String> env, KeyClock clock, Path workDir)
            throws Exception {
        return start(keys, env, clock, workDir, null);
    }

    /**
     * {@code shared}: an upstream several proxies use (several instances behind one endpoint);
     * closing this proxy leaves it open. Null: a new one of this proxy's own.
     */
    public static ProxyUnderTest start(List<String> keys, Map<String, String> env, KeyClock clock, Path workDir,
                                       MockUpstream shared) throws Exception {
        MockUpstream upstream = shared != null ? shared : new MockUpstream();
        Path dir = workDir != null ? workDir : Files.createTempDirectory("megallm-proxy-test");
        Files.createDirectories(dir.resolve("data"));
        Files.writeString(dir.resolve("data/keys.txt"), String.join("\n", keys) + "\n", StandardCharsets.UTF_8);
        Map<String, String> all = new HashMap<>();
        all.put("MEGALLM_BASE_URL", upstream.baseUrl());
        all.put("HOST", "127.0.0.1");
        all.put("PORT", "0");
        all.put("MEGALLM_TIMEOUT", "10");
        all.put("SHUTDOWN_GRACE", "5");
        all.putAll(env);
        int mark = LogCapture.size();
        ProxyServer server;
        try {
            server = new ProxyServer(ConfigLoader.load(all, dir), Transport.best(), clock).start();
        } catch (ConfigError | RuntimeException | InterruptedException e) {
            if (shared == null) {
                upstream.close();
            }
            throw e;
        }
        ProxyUnderTest p = new ProxyUnderTest(upstream, server, dir, keys, mark, all);
        p.ownsUpstream = shared == null;
        return p;
    }

    public int port() {
        return server.port();
    }

    public URI uri(String path) {
        return URI.create("http://127.0.0.1:" + port() + path);
    }

    public HttpResponse<String> get(String path) throws IOException, InterruptedException {
        return http.send(HttpRequest.newBuilder(uri(path)).GET().timeout(Duration.ofSeconds(30)).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    public HttpResponse<String> post(String path, String json) throws IOException, InterruptedException {
        return http.send(HttpRequest.newBuilder(uri(path))
                        .header("Content-Type", "application/json")
                        .POST(HttpRequest.BodyPublishers.ofString(json))
                        .timeout(Duration.ofSeconds(30)).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    public HttpResponse<String> send(HttpRequest.Builder request) throws IOException, InterruptedException {
        return http.send(request.timeout(Duration.ofSeconds(30)).build(), HttpResponse.BodyHandlers.ofString());
    }

    public HttpClient client() {
        return http;
    }

    public HttpResponse<String> chat() throws IOException, InterruptedException {
        return post("/v1/chat/completions", CHAT);
    }

    /** {@link #chat()} without waiting for its answer. */
    public java.util.concurrent.CompletableFuture<HttpResponse<String>> chatAsync() {
        return http.sendAsync(HttpRequest.newBuilder(uri("/v1/chat/completions"))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(CHAT))
                .timeout(Duration.ofSeconds(30)).build(), HttpResponse.BodyHandlers.ofString());
    }

    private static final String CHAT = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

    /** Every line logged since this proxy started. */
    public List<String> logLines() {
        return LogCapture.since(logMark);
    }

    /**
     * Stops everything, then checks what an operator can see — every log line, /metrics and
     * /admin/keys — for any pool key or client key in full.
     */
    @Override
    public void close() throws IOException {
        List<String> secrets = new ArrayList<>(keys);
        String clientKeys = env.get("PROXY_API_KEYS");
        if (clientKeys != null && !clientKeys.startsWith("@")) {
            for (String k : clientKeys.split(",")) {
                if (!k.isBlank()) {
                    secrets.add(k.strip());
                }
            }
        }
        List<String> seen = new ArrayList<>();
        try {
            for (String path : new String[]{"/metrics", "/admin/keys"}) {
                HttpRequest.Builder b = HttpRequest.newBuilder(uri(path)).GET().timeout(Duration.ofSeconds(10));
                String token = env.get("ADMIN_TOKEN");
                if (token != null && !token.isBlank()) {
                    b.header("Authorization", "Bearer " + token.strip());
                }
                seen.add(path + ": " + http.send(b.build(), HttpResponse.BodyHandlers.ofString()).body());
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (IOException e) {
            seen.add("(operator views not readable: " + e + ")");
        } finally {
            server.shutdown();
            if (ownsUpstream) {
                upstream.close();
            }
        }
        seen.addAll(LogCapture.since(logMark));
        List<String> leaked = new ArrayList<>();
        for (String line : seen) {
            for (String k : secrets) {
                if (line.contains(k)) {
                    leaked.add(line.replace(k, "<KEY>"));
                }
            }
        }
        if (!leaked.isEmpty()) {
            throw new AssertionError("a key appeared in full where an operator can see it: " + leaked);
        }
    }
}
