package io.megallm.proxy.bench.demo;

import org.junit.jupiter.api.Test;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Issue 17: {@code demo} as a new user runs it: a chat and a stream through it, and the user's
 * own {@code data/keys.txt} (in the working directory it was started from) left as it was.
 */
class DemoProcessTest {

    private static final Path PROXY_JAR = Path.of("..", "proxy-server", "target", "megallm-proxy.jar").toAbsolutePath();

    @Test
    void demoServesAChatAndAStreamAndTouchesNoKeysFile() throws Exception {
        assumeTrue(Files.isRegularFile(PROXY_JAR), "proxy jar not built (run through the reactor): demo test skipped");
        Path userDir = Files.createTempDirectory("demo-user");
        Path userKeys = userDir.resolve("data/keys.txt");
        Files.createDirectories(userKeys.getParent());
        String realKeys = "sk-mega-the-users-real-key-0000000001\n";
        Files.writeString(userKeys, realKeys);
        FileTime before = Files.getLastModifiedTime(userKeys);
        int port;
        try (ServerSocket s = new ServerSocket(0)) {
            port = s.getLocalPort();
        }
        Process demo = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp", System.getProperty("java.class.path"), "io.megallm.proxy.bench.BenchMain",
                "demo", "--port", Integer.toString(port), "--proxy-jar", PROXY_JAR.toString())
                .directory(userDir.toFile())
                .redirectErrorStream(true)
                .start();
        List<String> output = new ArrayList<>();
        try {
            BufferedReader out = new BufferedReader(new InputStreamReader(demo.getInputStream(), StandardCharsets.UTF_8));
            String line;
            Path demoDir = null;
            Pattern keysLine = Pattern.compile("demo keys in (\\S+)keys\\.txt");
            while ((line = out.readLine()) != null) {
                output.add(line);
                Matcher m = keysLine.matcher(line);
                if (m.find()) {
                    demoDir = Path.of(m.group(1)).getParent();
                }
                if (line.startsWith("Try these")) {
                    break;
                }
            }
            assertTrue(line != null, "the demo ended before it was ready:\n" + String.join("\n", output));
            // Keep draining its output so that the child never blocks on a full pipe.
            CompletableFuture.runAsync(() -> out.lines().forEach(output::add));

            HttpClient http = HttpClient.newHttpClient();
            String base = "http://127.0.0.1:" + port;
            HttpResponse<String> chat = http.send(HttpRequest.newBuilder(URI.create(base + "/v1/chat/completions"))
                    .header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(
                            "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}"))
                    .timeout(Duration.ofSeconds(30)).build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(200, chat.statusCode(), chat.body());
            assertTrue(chat.body().contains("\"chat.completion\""), chat.body());

            HttpResponse<String> stream = http.send(HttpRequest.newBuilder(URI.create(base + "/v1/chat/completions"))
                    .header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(
                            "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}"))
                    .timeout(Duration.ofSeconds(30)).build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(200, stream.statusCode());
            assertTrue(stream.body().trim().endsWith("data: [DONE]"), stream.body());

            HttpResponse<String> noModel = http.send(HttpRequest.newBuilder(URI.create(base + "/v1/chat/completions"))
                    .header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString("{\"messages\":[]}"))
                    .timeout(Duration.ofSeconds(30)).build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(400, noModel.statusCode(), "the mock refuses a chat without a model, as OpenAI does");

            demo.destroy();
            assertTrue(demo.waitFor(30, TimeUnit.SECONDS), "the demo did not stop on SIGTERM");
            assertEquals(0, demo.exitValue(), String.join("\n", output));
            assertTrue(demoDir != null && !Files.exists(demoDir), "the demo's temporary directory is left: " + demoDir);
        } finally {
            demo.destroyForcibly();
        }
        assertEquals(realKeys, Files.readString(userKeys));
        assertEquals(before, Files.getLastModifiedTime(userKeys));
        try (var files = Files.list(userDir)) {
            assertEquals(List.of(userDir.resolve("data")), files.toList(), "the demo wrote into its working directory");
        }
        assertFalse(output.stream().anyMatch(l -> l.contains("sk-mega-the-users-real-key")));
    }
}
