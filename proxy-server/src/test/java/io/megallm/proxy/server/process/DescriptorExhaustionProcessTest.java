package io.megallm.proxy.server.process;

import io.megallm.proxy.testing.MockUpstream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.stream.Stream;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Contract §9: running out of file descriptors fails the connection that needed one, and every
 * permit it held comes back. The real program runs under {@code ulimit -n} far below the
 * flood it gets; upstream sockets then fail at creation (EMFILE), which is the path that used
 * to lose a permit for good and leave its request without an answer.
 */
class DescriptorExhaustionProcessTest {

    private static final String POOL_KEY = "sk-mega-fd-test-SECRETKEY-0001";
    private static final int DESCRIPTORS = 160;
    private static final int FLOOD = 400;

    @TempDir
    Path work;

    @TempDir
    Path out;

    /**
     * The module's runtime classpath with each classes directory packed into a jar, as in the
     * shipped fat jar: a class loaded from a directory opens a file, and under this flood it
     * would fail to load for want of a descriptor, which the real jar never needs.
     */
    private String runtimeClasspath() throws IOException {
        List<String> kept = new ArrayList<>();
        int n = 0;
        for (String entry : System.getProperty("java.class.path").split(File.pathSeparator)) {
            String e = entry.replace('\\', '/');
            if (e.endsWith("/test-classes") || e.endsWith("/test-classes/") || e.endsWith("-tests.jar")
                    || e.contains("surefire")) {
                continue;
            }
            Path path = Path.of(entry);
            kept.add(Files.isDirectory(path) ? jar(path, out.resolve("classes-" + n++ + ".jar")).toString() : entry);
        }
        return String.join(File.pathSeparator, kept);
    }

    private static Path jar(Path dir, Path target) throws IOException {
        try (JarOutputStream jar = new JarOutputStream(Files.newOutputStream(target));
             Stream<Path> files = Files.walk(dir)) {
            for (Path f : (Iterable<Path>) files.filter(Files::isRegularFile)::iterator) {
                jar.putNextEntry(new JarEntry(dir.relativize(f).toString().replace('\\', '/')));
                Files.copy(f, jar);
                jar.closeEntry();
            }
        }
        return target;
    }

    private Process launch(Map<String, String> env) throws IOException {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        ProcessBuilder pb = new ProcessBuilder("bash", "-c",
                "ulimit -n " + DESCRIPTORS + " && exec \"$PROXY_JAVA\" -Xmx256m -cp \"$PROXY_CP\" io.megallm.proxy.server.Main")
                .directory(work.toFile())
                .redirectOutput(out.resolve("stdout.txt").toFile())
                .redirectError(out.resolve("stderr.txt").toFile());
        pb.environment().clear();
        pb.environment().putAll(env);
        pb.environment().put("PROXY_JAVA", java);
        pb.environment().put("PROXY_CP", runtimeClasspath());
        return pb.start();
    }

    private String console() throws IOException {
        return Files.readString(out.resolve("stdout.txt"), StandardCharsets.UTF_8)
                + Files.readString(out.resolve("stderr.txt"), StandardCharsets.UTF_8);
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    private void awaitListening(Process p, int port) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        for (;;) {
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress("127.0.0.1", port), 1000);
                return;
            } catch (ConnectException refused) {
                if (!p.isAlive() || System.nanoTime() > deadline) {
                    fail("the program is not listening:\n" + console());
                }
                Thread.sleep(50);
            }
        }
    }

    private static double metric(HttpClient http, int port, String sample) throws Exception {
        String text = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/metrics"))
                .timeout(Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.ofString()).body();
        Matcher m = Pattern.compile("(?m)^" + Pattern.quote(sample) + " ([0-9.eE+-]+)$").matcher(text);
        if (!m.find()) {
            throw new AssertionError("no " + sample + " in /metrics:\n" + text);
        }
        return Double.parseDouble(m.group(1));
    }

    /** Reads /metrics until the sample has the value; a request that cannot be served yet is retried. */
    private void awaitMetric(HttpClient http, int port, String sample, double expected) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        double seen = Double.NaN;
        while (System.nanoTime() < deadline) {
            try {
                seen = metric(http, port, sample);
                if (seen == expected) {
                    return;
                }
            } catch (IOException notYet) {
                // the proxy may still be short of descriptors for this very request
            }
            Thread.sleep(20);
        }
        String all = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/metrics"))
                .timeout(Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.ofString()).body();
        fail(sample + " stayed at " + seen + ", expected " + expected + "\n" + all.lines()
                .filter(l -> l.startsWith("megallm_active") || l.startsWith("megallm_upstream_")
                        || l.startsWith("megallm_request_endings") || l.startsWith("megallm_requests_total"))
                .filter(l -> !l.contains("_bucket")).reduce("", (a, b) -> a + b + "\n") + console());
    }

    private void awaitPermitsMatch(HttpClient http, int port, MockUpstream mock) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        double counted = Double.NaN;
        int seen = -1;
        while (System.nanoTime() < deadline) {
            try {
                counted = metric(http, port, "megallm_upstream_connections");
                seen = mock.openConnections();
                if (counted == seen && counted == metric(http, port, "megallm_upstream_connections")) {
                    return;
                }
            } catch (IOException notYet) {
                // the proxy may still be short of descriptors for this very request
            }
            Thread.sleep(20);
        }
        fail("the proxy counts " + counted + " upstream connections, the upstream sees " + seen + " open\n" + console());
    }

    @Test
    @Timeout(240)
    void aProcessOutOfDescriptorsFailsOnlyTheConnectionsThatNeededOneAndGivesEveryPermitBack() throws Exception {
        Files.createDirectories(work.resolve("data"));
        Files.writeString(work.resolve("data/keys.txt"), POOL_KEY + "\n", StandardCharsets.UTF_8);
        int port = freePort();
        try (MockUpstream mock = new MockUpstream()) {
            // Each flood request holds its upstream connection: descriptors run out on both sides.
            mock.otherwise(MockUpstream.stall());
            Process p = launch(Map.of(
                    "MEGALLM_BASE_URL", mock.baseUrl(),
                    "HOST", "127.0.0.1",
                    "PORT", Integer.toString(port),
                    "MEGALLM_MAX_RETRIES", "0",
                    "MEGALLM_TIMEOUT", "60",
                    "HTTP_POOL_MAXSIZE", "1000",
                    "ACCESS_LOG_CONSOLE", "false"));
            HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
                    .connectTimeout(Duration.ofSeconds(5)).build();
            List<Socket> flood = new ArrayList<>();
            try {
                awaitListening(p, port);
                String body = "{\"model\":\"m\",\"messages\":[]}";
                byte[] request = ("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        + "Content-Length: " + body.length() + "\r\n\r\n" + body).getBytes(StandardCharsets.ISO_8859_1);
                CountDownLatch unreachable = new CountDownLatch(1);
                ConcurrentLinkedQueue<String> statuses = new ConcurrentLinkedQueue<>();
                List<Thread> readers = new ArrayList<>();
                // First the connections, then the requests: by the time a request asks for an
                // upstream socket, the accepted client sockets have used up every descriptor.
                for (int i = 0; i < FLOOD; i++) {
                    Socket s = new Socket();
                    s.connect(new InetSocketAddress("127.0.0.1", port), 5000);
                    flood.add(s);
                }
                for (Socket s : flood) {
                    s.getOutputStream().write(request);
                    s.getOutputStream().flush();
                    Thread t = new Thread(() -> {
                        try {
                            String status = statusLine(s.getInputStream());
                            statuses.add(status);
                            if (status.startsWith("HTTP/1.1 502")) {
                                unreachable.countDown();
                            }
                        } catch (IOException closed) {
                            // closed by the test below
                        }
                    });
                    t.setDaemon(true);
                    t.start();
                    readers.add(t);
                }
                // An upstream socket that could not be created was answered (502), not stranded.
                assertTrue(unreachable.await(60, TimeUnit.SECONDS),
                        "no request was answered 502 while descriptors ran out: " + statuses + "\n" + console());
                for (Socket s : flood) {
                    s.close();
                }
                for (Thread t : readers) {
                    t.join(10_000);
                }
                // Every permit came back: each one the proxy still counts is a socket the upstream
                // sees open (an idle keep-alive connection, e.g. one opened for a client that left).
                awaitPermitsMatch(http, port, mock);
                awaitMetric(http, port, "megallm_upstream_waiting", 0);
                awaitMetric(http, port, "megallm_active_requests", 1);

                mock.otherwise(MockUpstream.json(200, "{\"id\":\"after-the-flood\"}"));
                HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port
                                + "/v1/chat/completions"))
                        .header("Content-Type", "application/json")
                        .POST(HttpRequest.BodyPublishers.ofString(body)).timeout(Duration.ofSeconds(30)).build(),
                        HttpResponse.BodyHandlers.ofString());
                assertEquals(200, r.statusCode(), r.body());
                assertEquals("{\"id\":\"after-the-flood\"}", r.body());
                assertTrue(p.isAlive(), console());
            } finally {
                for (Socket s : flood) {
                    s.close();
                }
                p.destroy();
                if (!p.waitFor(20, TimeUnit.SECONDS)) {
                    p.destroyForcibly();
                    p.waitFor(10, TimeUnit.SECONDS);
                }
            }
        }
    }

    private static String statusLine(InputStream in) throws IOException {
        ByteArrayOutputStream line = new ByteArrayOutputStream();
        int b;
        while ((b = in.read()) >= 0 && b != '\n') {
            line.write(b);
        }
        return line.toString(StandardCharsets.ISO_8859_1).trim();
    }
}
