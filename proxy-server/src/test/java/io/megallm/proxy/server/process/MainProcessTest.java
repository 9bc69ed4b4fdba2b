package io.megallm.proxy.server.process;

import io.megallm.proxy.key.ApiKey;
import io.megallm.proxy.testing.MockUpstream;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.http.DefaultHttpContent;
import io.netty.handler.codec.http.DefaultHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.util.concurrent.ScheduledFuture;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.time.LocalDate;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Predicate;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The real program in its own JVM (contract §3 bad values, §10 SIGTERM): exit codes, what an
 * operator sees on the console, and a graceful drain that lets an open stream finish.
 */
class MainProcessTest {

    private static final String POOL_KEY = "sk-mega-process-test-SECRETKEY-0001";
    /** Not ASCII, and beyond the Basic Multilingual Plane: the access log must still be UTF-8. */
    private static final String MODEL = "gpt-4o-caf\u00e9-\uD83D\uDE42";
    private static final int EVENTS = 30;

    @TempDir
    Path work;

    @TempDir
    Path out;

    /** The module's runtime classpath, without test classes (they carry logback-test.xml). */
    private static String runtimeClasspath() {
        String cp = System.getProperty("java.class.path");
        List<String> kept = new ArrayList<>();
        for (String entry : cp.split(File.pathSeparator)) {
            String e = entry.replace('\\', '/');
            if (e.endsWith("/test-classes") || e.endsWith("/test-classes/") || e.endsWith("-tests.jar")
                    || e.contains("surefire")) {
                continue;
            }
            kept.add(entry);
        }
        if (kept.stream().noneMatch(e -> e.replace('\\', '/').matches(".*/classes/?"))) {
            throw new IllegalStateException("no main classes directory on the test classpath: " + cp);
        }
        return String.join(File.pathSeparator, kept);
    }

    private Process launch(Map<String, String> env) throws IOException {
        return launch(env, "-Xmx256m");
    }

    private Process launch(Map<String, String> env, String heap) throws IOException {
        return launch(List.of(), env, heap);
    }

    /** {@code prefix}: a command the program runs under (setpriv), or none; {@code jvm}: the heap and any -D. */
    private Process launch(List<String> prefix, Map<String, String> env, String... jvm) throws IOException {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> command = new ArrayList<>(prefix);
        command.add(java);
        command.addAll(List.of(jvm));
        command.addAll(List.of("-cp", runtimeClasspath(), "io.megallm.proxy.server.Main"));
        ProcessBuilder pb = new ProcessBuilder(command)
                .directory(work.toFile())
                .redirectOutput(out.resolve("stdout.txt").toFile())
                .redirectError(out.resolve("stderr.txt").toFile());
        // Nothing of the test JVM's environment (PORT, LOG_LEVEL, CONFIG_FILE, ...) may leak in.
        pb.environment().clear();
        pb.environment().putAll(env);
        return pb.start();
    }

    private String stdout() throws IOException {
        return Files.readString(out.resolve("stdout.txt"), StandardCharsets.UTF_8);
    }

    private String stderr() throws IOException {
        return Files.readString(out.resolve("stderr.txt"), StandardCharsets.UTF_8);
    }

    private static void stop(Process p) throws InterruptedException {
        if (p.isAlive()) {
            p.destroyForcibly();
            p.waitFor(10, TimeUnit.SECONDS);
        }
    }

    // ---- bad configuration ---------------------------------------------------------------------

    private void assertRefusesToStart(Map<String, String> env, String name, String value) throws Exception {
        Process p = launch(env);
        try {
            assertTrue(p.waitFor(30, TimeUnit.SECONDS), "the program did not stop on a bad value");
            String err = stderr();
            String all = stdout() + err;
            assertEquals(2, p.exitValue(), all);
            List<String> lines = err.lines().filter(l -> !l.isEmpty()).collect(Collectors.toList());
            assertEquals(1, lines.size(), "stderr must be exactly one line: " + err);
            assertTrue(lines.get(0).contains(name), lines.get(0));
            assertTrue(lines.get(0).contains(value), lines.get(0));
            assertFalse(all.contains("Exception"), all);
            assertFalse(all.contains("\tat "), all);
            assertFalse(Files.exists(work.resolve("logs/app.log")) && Files.size(work.resolve("logs/app.log")) > 0,
                    "nothing should have been logged before the configuration was valid");
        } finally {
            stop(p);
        }
    }

    @Test
    @Timeout(60)
    void badValueExitsWith2AndOneLineOnStderr() throws Exception {
        assertRefusesToStart(Map.of("MEGALLM_TIMEOUT", "abc"), "MEGALLM_TIMEOUT", "abc");
    }

    @Test
    @Timeout(60)
    void badValueFromDotEnvOrConfigFileIsReportedTheSameWay() throws Exception {
        Files.writeString(work.resolve(".env"), "PORT=70000\n", StandardCharsets.UTF_8);
        assertRefusesToStart(Map.of(), "PORT", "70000");
        Files.delete(work.resolve(".env"));
        Files.createDirectories(work.resolve("config"));
        Files.writeString(work.resolve("config/application.conf"), "LOG_LEVEL = LOUD\n", StandardCharsets.UTF_8);
        assertRefusesToStart(Map.of(), "LOG_LEVEL", "LOUD");
    }

    // ---- SIGTERM drain -----------------------------------------------------------------------------

    /**
     * An SSE upstream that sends its first event at once and the rest (one every 100 ms, then
     * [DONE]) only when the test says so, so the test knows the stream is still open while it
     * checks that the listening socket is gone.
     */
    private static final class GatedSse implements MockUpstream.Behavior {
        private final CompletableFuture<ChannelHandlerContext> started = new CompletableFuture<>();

        @Override
        public void respond(ChannelHandlerContext ctx, io.netty.handler.codec.http.FullHttpRequest request) {
            HttpResponse head = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK);
            head.headers().set(HttpHeaderNames.CONTENT_TYPE, "text/event-stream; charset=utf-8");
            head.headers().set(HttpHeaderNames.CACHE_CONTROL, "no-cache");
            HttpUtil.setTransferEncodingChunked(head, true);
            ctx.write(head);
            ctx.writeAndFlush(content(MockUpstream.event(0)));
            started.complete(ctx);
        }

        void release() throws Exception {
            ChannelHandlerContext ctx = started.get(10, TimeUnit.SECONDS);
            AtomicInteger next = new AtomicInteger(1);
            ScheduledFuture<?>[] task = new ScheduledFuture<?>[1];
            ctx.executor().execute(() -> task[0] = ctx.executor().scheduleAtFixedRate(() -> {
                if (!ctx.channel().isActive()) {
                    task[0].cancel(false);
                    return;
                }
                int i = next.getAndIncrement();
                if (i < EVENTS) {
                    ctx.writeAndFlush(content(MockUpstream.event(i)));
                    return;
                }
                task[0].cancel(false);
                ctx.writeAndFlush(content("data: [DONE]\n\n"));
                ctx.writeAndFlush(LastHttpContent.EMPTY_LAST_CONTENT);
            }, 0, 100, TimeUnit.MILLISECONDS));
        }

        private static DefaultHttpContent content(String s) {
            return new DefaultHttpContent(Unpooled.copiedBuffer(s, StandardCharsets.UTF_8));
        }
    }

    /** data/keys.txt in the work directory, with the one pool key, as most starts here want it. */
    private void writePoolKeyFile() throws IOException {
        Files.createDirectories(work.resolve("data"));
        Files.writeString(work.resolve("data/keys.txt"), POOL_KEY + "\n", StandardCharsets.UTF_8);
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    /** True when a connection was accepted, false when it was refused. */
    private static boolean accepts(int port) throws IOException {
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress("127.0.0.1", port), 1000);
            return true;
        } catch (ConnectException refused) {
            return false;
        }
    }

    private void awaitListening(Process p, int port) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (!accepts(port)) {
            if (!p.isAlive()) {
                fail("the program exited with " + p.exitValue() + " before listening:\n" + stdout() + stderr());
            }
            if (System.nanoTime() > deadline) {
                fail("the program did not listen on port " + port + " within 20 s:\n" + stdout() + stderr());
            }
            Thread.sleep(50);
        }
    }

    private static void awaitRefused(int port) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (accepts(port)) {
            if (System.nanoTime() > deadline) {
                fail("new connections were still accepted 10 s after SIGTERM");
            }
            Thread.sleep(20);
        }
    }

    @Test
    @Timeout(120)
    void aHundredThousandClientsFitA256MegabyteHeapAndMetricsStillAnswers() throws Exception {
        // Each client held two rate windows of ~500 bytes, limits or not, and /metrics copied its
        // 18.7 MB text four times: the scrape ran out of heap and answered an empty reply.
        writePoolKeyFile();
        StringBuilder clients = new StringBuilder();
        for (int i = 0; i < 100_000; i++) {
            clients.append(String.format("ck-many-%026d name=c%d%n", i, i));
        }
        Files.writeString(work.resolve("data/clients.txt"), clients, StandardCharsets.UTF_8);
        int port = freePort();
        Process p = launch(Map.of("MEGALLM_BASE_URL", "http://127.0.0.1:9/v1", "HOST", "127.0.0.1",
                "PORT", Integer.toString(port), "PROXY_API_KEYS", "@data/clients.txt"), "-Xmx256m");
        try {
            awaitListening(p, port);
            java.net.http.HttpClient http = java.net.http.HttpClient.newHttpClient();
            for (int i = 0; i < 3; i++) {
                java.net.http.HttpResponse<String> metrics = http.send(java.net.http.HttpRequest.newBuilder(
                        java.net.URI.create("http://127.0.0.1:" + port + "/metrics")).build(),
                        java.net.http.HttpResponse.BodyHandlers.ofString());
                assertEquals(200, metrics.statusCode());
                assertTrue(metrics.body().contains("megallm_client_tokens_total{client=\"c99999\",kind=\"cached\"} 0\n"));
            }
            assertTrue(p.isAlive());
        } finally {
            p.destroy();
            p.waitFor(15, TimeUnit.SECONDS);
            stop(p);
        }
    }

    // ---- a key or client file that stops being readable (README: "keeps the current pool and logs why")

    /**
     * The command prefix under which the program cannot read a file of mode 000: none for an
     * ordinary user; as root (whose CAP_DAC_OVERRIDE reads any file, so a chmod changes nothing for
     * it), setpriv without the two capabilities that bypass file modes, so the mode means to the
     * program what it means to any user. Tried on a real file first; the test is skipped when
     * neither works (root without setpriv).
     */
    private List<String> commandThatHonoursFileModes() throws Exception {
        Path probe = Files.writeString(out.resolve("mode-000-probe"), "x");
        Set<PosixFilePermission> mode = Files.getPosixFilePermissions(probe);
        Files.setPosixFilePermissions(probe, Set.of());
        try {
            List<List<String>> candidates = List.of(List.of(), List.of("setpriv",
                    "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search", "--"));
            for (List<String> prefix : candidates) {
                List<String> command = new ArrayList<>(prefix);
                command.addAll(List.of("test", "-r", probe.toString()));
                try {
                    Process t = new ProcessBuilder(command).redirectErrorStream(true).start();
                    if (t.waitFor(10, TimeUnit.SECONDS) && t.exitValue() == 1) {
                        return prefix;
                    }
                } catch (IOException noSuchCommand) {
                    // the next candidate
                }
            }
        } finally {
            Files.setPosixFilePermissions(probe, mode);
        }
        Assumptions.abort("a file of mode 000 stays readable here (root without setpriv): nothing to observe");
        return List.of();
    }

    /** The first console line that matches; polls the file the child writes. */
    private String awaitStdout(Process p, Predicate<String> line, String what) throws Exception {
        return awaitLine(p, out.resolve("stdout.txt"), line, what);
    }

    /** The first line of {@code file} that matches; polls the file the child writes. */
    private String awaitLine(Process p, Path file, Predicate<String> line, String what) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (true) {
            String hit = !Files.exists(file) ? null
                    : Files.readString(file, StandardCharsets.UTF_8).lines().filter(line).findFirst().orElse(null);
            if (hit != null) {
                return hit;
            }
            if (!p.isAlive() || System.nanoTime() > deadline) {
                fail("no line in " + file.getFileName() + " " + what + " (alive: " + p.isAlive() + "):\n" + stdout() + stderr());
            }
            Thread.sleep(20); // no event to await across processes
        }
    }

    private long stdoutCount(Predicate<String> line) throws IOException {
        return stdout().lines().filter(line).count();
    }

    @Test
    @Timeout(180)
    void aKeyOrClientFileThatStopsBeingReadableIsSaidOnceKeepsWhatWasLoadedAndIsReloadedWhenReadable()
            throws Exception {
        // chmod changes neither the time, the size nor the inode the watcher compared: the
        // program said nothing until an explicit reload.
        List<String> prefix = commandThatHonoursFileModes();
        Files.createDirectories(work.resolve("data"));
        Path keys = work.resolve("data/keys.txt");
        Path clients = work.resolve("data/clients.txt");
        String client = "ck-process-unreadable-000001";
        Files.writeString(keys, POOL_KEY + "\n", StandardCharsets.UTF_8);
        Files.writeString(clients, client + " name=one\n", StandardCharsets.UTF_8);
        Set<PosixFilePermission> mode = Files.getPosixFilePermissions(keys);
        Predicate<String> keysRefused = l -> l.contains(" ERROR ") && l.contains("the keys file data/keys.txt is not readable");
        Predicate<String> clientsRefused = l -> l.contains(" ERROR ")
                && l.contains("the client file data/clients.txt is not readable") && l.endsWith("the clients stay as they were");
        int port = freePort();
        try (MockUpstream mock = new MockUpstream()) {
            mock.otherwise(MockUpstream.json(200, "{\"object\":\"list\",\"data\":[]}"));
            Process p = launch(prefix, Map.of("MEGALLM_BASE_URL", mock.baseUrl(), "HOST", "127.0.0.1",
                    "PORT", Integer.toString(port), "PROXY_API_KEYS", "@data/clients.txt"), "-Xmx256m");
            try {
                awaitListening(p, port);
                Files.setPosixFilePermissions(keys, Set.of());
                String line = awaitStdout(p, keysRefused, "refusing the unreadable keys file");
                assertTrue(line.contains("the pool is unchanged"), line);
                Files.setPosixFilePermissions(clients, Set.of());
                awaitStdout(p, clientsRefused, "refusing the unreadable client file");
                // The key and the client loaded before are still served.
                java.net.http.HttpClient http = java.net.http.HttpClient.newHttpClient();
                java.net.http.HttpResponse<String> models = http.send(java.net.http.HttpRequest.newBuilder(
                                java.net.URI.create("http://127.0.0.1:" + port + "/v1/models"))
                        .header("Authorization", "Bearer " + client).build(),
                        java.net.http.HttpResponse.BodyHandlers.ofString());
                assertEquals(200, models.statusCode(), models.body());

                Files.setPosixFilePermissions(keys, mode);
                Files.setPosixFilePermissions(clients, mode);
                awaitStdout(p, l -> l.contains("keys file changed, reloaded: total=1 "), "reloading the readable keys file");
                awaitStdout(p, l -> l.contains("reloaded 1 client keys from data/clients.txt"), "reloading the client file");
                // Said once each, though the keys file stayed unreadable over several polls (the
                // client file's refusal took two of its own watcher's polls, at the same pace).
                assertEquals(1, stdoutCount(keysRefused), stdout());
                assertEquals(1, stdoutCount(clientsRefused), stdout());
                // app.log is written on a thread of its own: await the line there too.
                awaitLine(p, work.resolve("logs/app.log"), l -> l.contains("keys file changed, reloaded: total=1 "),
                        "reloading the readable keys file");
                assertEquals(1, Files.readString(work.resolve("logs/app.log")).lines()
                        .filter(l -> l.contains("the keys file data/keys.txt is not readable")).count(), "app.log too");
            } finally {
                Files.setPosixFilePermissions(keys, mode);
                Files.setPosixFilePermissions(clients, mode);
                stop(p);
            }
        }
    }

    // ---- rolled logs older than 7 days (§10), however old -----------------------------------------

    @Test
    @Timeout(60)
    void rolledLogsOlderThanSevenDaysAreRemovedAtStartHoweverOldAndNothingElse() throws Exception {
        // Logback's cleanHistoryOnStart looks back 32 days: files left from a longer stop stayed.
        writePoolKeyFile();
        Path logs = Files.createDirectories(work.resolve("custom/logs"));
        LocalDate today = LocalDate.now();
        java.nio.file.attribute.FileTime longAgo = java.nio.file.attribute.FileTime.from(
                java.time.Instant.now().minus(java.time.Duration.ofDays(500)));
        List<Path> kept = new ArrayList<>();
        List<Path> removed = new ArrayList<>();
        for (String name : List.of("app", "access")) {
            for (int age : new int[] {1, 8, 40, 400}) {
                Path f = Files.writeString(logs.resolve(name + "." + today.minusDays(age) + ".0.log"), "old\n");
                (age <= 7 ? kept : removed).add(f);
            }
            removed.add(Files.writeString(logs.resolve(name + "." + today.minusDays(400) + ".3.log"), "old\n"));
            // Dated 1 day ago by its name, though its time says 500 days: the name counts.
            Path touched = Files.writeString(logs.resolve(name + "." + today.minusDays(1) + ".1.log"), "old\n");
            Files.setLastModifiedTime(touched, longAgo);
            kept.add(touched);
        }
        // The live files of the last run (written to today: logback rolls a live file of an
        // earlier day itself), and what an operator may keep next to them, old by their time and
        // date: never touched.
        for (String name : List.of("app.log", "access.log")) {
            kept.add(Files.writeString(logs.resolve(name), "last run\n"));
        }
        String old = today.minusDays(400).toString();
        for (String name : List.of("notes.txt", "app." + old + ".0.log.gz", "app." + old + ".log",
                "backup-app." + old + ".0.log", "app." + old + ".0.log.keep")) {
            Path f = Files.writeString(logs.resolve(name), "operator's\n");
            Files.setLastModifiedTime(f, longAgo);
            kept.add(f);
        }
        Path dirLikeARolledFile = Files.createDirectory(logs.resolve("access." + old + ".7.log"));
        kept.add(dirLikeARolledFile);

        int port = freePort();
        Process p = launch(Map.of("MEGALLM_BASE_URL", "http://127.0.0.1:9/v1", "HOST", "127.0.0.1",
                "PORT", Integer.toString(port), "LOG_DIR", "custom/logs"));
        try {
            awaitListening(p, port); // the clean-up runs before the listening socket is bound
            for (Path f : removed) {
                assertFalse(Files.exists(f), f + " should have been removed");
            }
            for (Path f : kept) {
                assertTrue(Files.exists(f), f + " should have been kept");
            }
            assertTrue(Files.readString(logs.resolve("app.log")).startsWith("last run\n"), "the live file is appended to");
            String said = awaitStdout(p, l -> l.contains("rolled log file(s) from custom/logs dated before "
                    + today.minusDays(7)), "about the removed files");
            assertTrue(said.contains(" INFO "), said);
        } finally {
            stop(p);
        }
    }

    @Test
    @Timeout(60)
    void unknownNamesInTheConfigFileAreOneWarningEachOnTheConsoleAndInAppLog() throws Exception {
        // HOCON takes any name: a typo or a lower-case name was ignored without a word.
        writePoolKeyFile();
        Files.createDirectories(work.resolve("config"));
        Files.writeString(work.resolve("config/application.conf"), "MEGALLM_TIMOUT = 5\nmax_key_retries = 9\n",
                StandardCharsets.UTF_8);
        int port = freePort();
        Process p = launch(Map.of("MEGALLM_BASE_URL", "http://127.0.0.1:9/v1", "HOST", "127.0.0.1",
                "PORT", Integer.toString(port), "MEGALLM_TIMEOUT_TYPO_IN_ENV", "1"));
        try {
            awaitListening(p, port);
            String timeout = "config/application.conf line 1: unknown setting MEGALLM_TIMOUT is ignored"
                    + " (did you mean MEGALLM_TIMEOUT?)";
            String retries = "config/application.conf line 2: unknown setting max_key_retries is ignored"
                    + " (did you mean MAX_KEY_RETRIES?)";
            awaitStdout(p, l -> l.endsWith(retries), "about max_key_retries");
            awaitLine(p, work.resolve("logs/app.log"), l -> l.endsWith(retries), "about max_key_retries");
            for (String text : List.of(stdout(), Files.readString(work.resolve("logs/app.log")))) {
                List<String> warnings = text.lines().filter(l -> l.contains("unknown setting")).toList();
                assertEquals(2, warnings.size(), text);
                assertTrue(warnings.get(0).contains(" WARN ") && warnings.get(0).endsWith(timeout), warnings.get(0));
                assertTrue(warnings.get(1).contains(" WARN ") && warnings.get(1).endsWith(retries), warnings.get(1));
                assertTrue(text.contains(" timeout=120.0s max_retries=3 max_key_retries=3 "), "still ignored: " + text);
            }
        } finally {
            stop(p);
        }
    }

    @Test
    @Timeout(60)
    void sigtermWhileStartingStillExits0() throws Exception {
        // An orchestrator may stop a container a moment after starting it. The first line the
        // program prints comes from its configuration, before it listens: a SIGTERM then ended
        // the JVM with 143 (the signal's default), as if it had crashed.
        writePoolKeyFile();
        Process p = launch(Map.of("MEGALLM_BASE_URL", "http://127.0.0.1:9/v1", "HOST", "127.0.0.1",
                "PORT", Integer.toString(freePort())));
        try {
            while (stdout().isEmpty()) {
                assertTrue(p.isAlive(), "the program ended before it printed anything: " + stderr());
                Thread.sleep(5); // polls a file the child writes; no event to await across processes
            }
            p.destroy(); // SIGTERM
            assertTrue(p.waitFor(30, TimeUnit.SECONDS), "the program did not exit after SIGTERM");
            assertEquals(0, p.exitValue(), stdout() + stderr());
        } finally {
            stop(p);
        }
    }

    @Test
    @Timeout(120)
    void sigtermRefusesNewConnectionsLetsTheOpenStreamFinishAndExits0() throws Exception {
        writePoolKeyFile();
        int port = freePort();
        GatedSse upstream = new GatedSse();
        try (MockUpstream mock = new MockUpstream()) {
            mock.otherwise(upstream);
            Process p = launch(Map.of(
                    "MEGALLM_BASE_URL", mock.baseUrl(),
                    "HOST", "127.0.0.1",
                    "PORT", Integer.toString(port),
                    "SHUTDOWN_GRACE", "20",
                    "MEGALLM_TIMEOUT", "30"));
            try {
                awaitListening(p, port);
                String body = "{\"model\":\"" + MODEL + "\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
                try (Socket s = post(port, body, "", 30_000)) {
                    InputStream in = s.getInputStream();
                    String head = readHead(in);
                    assertTrue(head.startsWith("HTTP/1.1 200"), head);
                    String lowerHead = head.toLowerCase();
                    assertTrue(lowerHead.contains("transfer-encoding: chunked"), head);
                    assertTrue(lowerHead.contains("content-type: text/event-stream"), head);

                    ByteArrayOutputStream raw = new ByteArrayOutputStream();
                    ByteArrayOutputStream data = new ByteArrayOutputStream();
                    while (!data.toString(StandardCharsets.UTF_8).contains("data:")) {
                        if (readChunk(in, raw, data)) {
                            fail("the stream ended before its first event");
                        }
                    }

                    p.destroy(); // SIGTERM
                    awaitRefused(port);
                    assertTrue(p.isAlive(), "the program must wait for the open stream");

                    upstream.release();
                    boolean ended = false;
                    while (!ended) {
                        ended = readChunk(in, raw, data);
                    }
                    String rawText = raw.toString(StandardCharsets.UTF_8);
                    assertTrue(rawText.endsWith("0\r\n\r\n"), "no terminating chunk: " + rawText);
                    StringBuilder expected = new StringBuilder();
                    for (int i = 0; i < EVENTS; i++) {
                        expected.append(MockUpstream.event(i));
                    }
                    expected.append("data: [DONE]\n\n");
                    assertEquals(expected.toString(), data.toString(StandardCharsets.UTF_8));
                }

                assertTrue(p.waitFor(15, TimeUnit.SECONDS), "the program did not exit within 15 s of the stream's end");
                assertEquals(0, p.exitValue(), stdout() + stderr());
            } finally {
                stop(p);
            }
            assertEquals(1, mock.requestCount());
            assertEquals(POOL_KEY, mock.all().get(0).key());
        }

        Path appLog = work.resolve("logs/app.log");
        assertTrue(Files.isRegularFile(appLog), "logs/app.log was not written in the working directory");
        String log = Files.readString(appLog, StandardCharsets.UTF_8);
        assertTrue(log.contains("listening on"), log);
        assertTrue(log.contains("loaded 1 keys"), log);
        assertTrue(log.contains("stopped"), "the shutdown was not logged: " + log);
        assertFalse(log.contains(POOL_KEY), "the pool key is in app.log in full");
        assertFalse(log.contains("Exception"), log);
        Path accessLog = work.resolve("logs/access.log");
        assertTrue(Files.isRegularFile(accessLog), "logs/access.log was not written in the working directory");
        String access = Files.readString(accessLog, StandardCharsets.UTF_8);
        assertTrue(access.contains(" method=POST path=/v1/chat/completions ") && access.contains(" stream=true ")
                && access.contains(" status=200 ") && access.contains(" end=complete"), access);
        assertTrue(access.contains(" model=" + MODEL + " "), access);
        assertTrue(access.contains(" key=" + ApiKey.mask(POOL_KEY) + " "), access);
        assertFalse(access.contains(POOL_KEY), "the pool key is in access.log in full");
        String console = stdout() + stderr();
        assertTrue(console.contains(" path=/v1/chat/completions ") && console.contains(" model=" + MODEL + " "),
                "the access line is not on the console: " + console);
        assertFalse(console.contains("|-WARN") || console.contains("|-ERROR"), "logback reports a problem: " + console);
        assertFalse(console.contains(POOL_KEY), "the pool key is on the console in full");
        assertFalse(console.contains("\tat "), console);
    }

    /**
     * Starts the program with {@code setting} in front of a mock that answers 200, sends
     * {@code requests} chat completions one connection each, and stops it with SIGTERM, which
     * writes out the access lines still batched (no need to wait for the 100 ms flush).
     */
    private void serveAndStop(String setting, String value, int requests) throws Exception {
        writePoolKeyFile();
        int port = freePort();
        try (MockUpstream mock = new MockUpstream()) {
            mock.otherwise(MockUpstream.json(200, "{\"id\":\"c1\",\"object\":\"chat.completion\"}"));
            Process p = launch(Map.of(
                    "MEGALLM_BASE_URL", mock.baseUrl(),
                    "HOST", "127.0.0.1",
                    "PORT", Integer.toString(port),
                    setting, value));
            try {
                awaitListening(p, port);
                String body = "{\"model\":\"" + MODEL + "\",\"messages\":[]}";
                for (int i = 0; i < requests; i++) {
                    try (Socket s = post(port, body, "Connection: close\r\n", 10_000)) {
                        String head = readHead(s.getInputStream());
                        assertTrue(head.startsWith("HTTP/1.1 200"), head);
                    }
                }
                p.destroy(); // SIGTERM
                assertTrue(p.waitFor(15, TimeUnit.SECONDS), "the program did not exit after SIGTERM");
            } finally {
                stop(p);
            }
        }
    }

    /**
     * §15, outbound "as httpx honours them": a base URL's name with several addresses, the first
     * of which refuses connections (a dead node of a DNS round robin; a dual-stack name whose
     * service listens on one family). httpx goes on to the next address; the proxy dialled only
     * the first, and every request got 502 until the lookup's answer changed. The name comes
     * from a hosts file of the program's own ({@code jdk.net.hosts.file}).
     */
    @Test
    @Timeout(60)
    void aNameWithSeveralAddressesIsServedThroughTheOneThatAnswers() throws Exception {
        writePoolKeyFile();
        int port = freePort();
        Path hosts = work.resolve("hosts");
        Files.writeString(hosts, "127.0.0.2 upstream.test\n127.0.0.1 upstream.test\n");
        try (MockUpstream mock = new MockUpstream()) {
            mock.otherwise(MockUpstream.json(200, "{\"id\":\"c1\",\"object\":\"chat.completion\"}"));
            Process p = launch(List.of(), Map.of(
                    "MEGALLM_BASE_URL", "http://upstream.test:" + mock.port() + "/v1",
                    "HOST", "127.0.0.1",
                    "PORT", Integer.toString(port)), "-Xmx256m", "-Djdk.net.hosts.file=" + hosts);
            try {
                awaitListening(p, port);
                String body = "{\"model\":\"" + MODEL + "\",\"messages\":[]}";
                for (int i = 0; i < 3; i++) {
                    try (Socket s = post(port, body, "Connection: close\r\n", 20_000)) {
                        String head = readHead(s.getInputStream());
                        assertTrue(head.startsWith("HTTP/1.1 200"), "request " + i + ": " + head);
                    }
                }
            } finally {
                stop(p);
            }
        }
    }

    /** Audit (2026-12-07): with LOG_LEVEL=ERROR app.log was empty: no summary of the running configuration. */
    @Test
    @Timeout(60)
    void atLogLevelErrorAppLogStillHasTheStartSummaryAndTheStop() throws Exception {
        serveAndStop("LOG_LEVEL", "ERROR", 1);
        String app = Files.readString(work.resolve("logs/app.log"), StandardCharsets.UTF_8);
        assertTrue(app.contains("listening on"), app);
        assertTrue(app.contains("configuration: ") && app.contains("log_level=ERROR"), app);
        assertTrue(app.contains("megallm-proxy stopped"), app);
        assertFalse(app.contains(POOL_KEY), "the pool key is in app.log in full");
    }

    @Test
    @Timeout(60)
    void withAccessLogConsoleFalseAccessLinesGoToTheFileOnlyAndAppEventsStayOnTheConsole() throws Exception {
        serveAndStop("ACCESS_LOG_CONSOLE", "false", 1);
        String access = Files.readString(work.resolve("logs/access.log"), StandardCharsets.UTF_8);
        assertTrue(access.contains(" path=/v1/chat/completions ") && access.contains(" model=" + MODEL + " ")
                && access.contains(" status=200 "), access);
        String console = stdout() + stderr();
        assertFalse(console.contains(" path=/v1/chat/completions "), "an access line reached the console: " + console);
        assertTrue(console.contains("listening on") && console.contains("access_log_console=false"),
                "the app events are not on the console: " + console);
        assertFalse(console.contains("|-WARN") || console.contains("|-ERROR"), "logback reports a problem: " + console);
    }

    @Test
    @Timeout(60)
    void pastAccessLogConsoleRateTheConsoleSaysSoAndTheFileKeepsEveryLine() throws Exception {
        int requests = 20;
        serveAndStop("ACCESS_LOG_CONSOLE_RATE", "1", requests);
        String access = Files.readString(work.resolve("logs/access.log"), StandardCharsets.UTF_8);
        assertEquals(requests, access.lines().filter(l -> l.contains(" path=/v1/chat/completions ")).count(), access);
        String console = stdout() + stderr();
        long onConsole = console.lines().filter(l -> l.contains(" path=/v1/chat/completions ")).count();
        // One line a second: 20 requests on loopback take far less than 19 seconds.
        assertTrue(onConsole >= 1 && onConsole < requests, onConsole + " access lines on the console: " + console);
        assertTrue(console.contains("more than 1 access lines this second: the rest of them are in access.log only"),
                console);
        assertTrue(console.contains("access_log_console_rate=1/s"), console);
        assertFalse(console.contains("|-WARN") || console.contains("|-ERROR"), "logback reports a problem: " + console);
    }

    // ---- memory per request (issue 11, finding 1) ------------------------------------------------------

    @Test
    @Timeout(180)
    void aMillionOneByteChunksFitA64MegabyteHeapAndTheProxyServesOnAfterwards() throws Exception {
        writePoolKeyFile();
        int port = freePort();
        String prefix = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"";
        String suffix = "\"}]}";
        int payload = 1_000_000;
        byte[] body = (prefix + "a".repeat(payload - prefix.length() - suffix.length()) + suffix)
                .getBytes(StandardCharsets.US_ASCII);
        try (MockUpstream mock = new MockUpstream()) {
            mock.otherwise(MockUpstream.json(200, "{\"id\":\"c1\",\"object\":\"chat.completion\"}"));
            // Kept as a slice each, a million chunks cost over 100 MB of heap: far more than this.
            Process p = launch(Map.of(
                    "MEGALLM_BASE_URL", mock.baseUrl(),
                    "HOST", "127.0.0.1",
                    "PORT", Integer.toString(port),
                    "ACCESS_LOG_CONSOLE", "false"), "-Xmx64m");
            try {
                awaitListening(p, port);
                try (Socket s = new Socket()) {
                    s.connect(new InetSocketAddress("127.0.0.1", port), 5000);
                    s.setSoTimeout(60_000);
                    OutputStream o = new java.io.BufferedOutputStream(s.getOutputStream(), 1 << 16);
                    o.write(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                            + "Transfer-Encoding: chunked\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
                    byte[] chunk = {'1', '\r', '\n', 0, '\r', '\n'};
                    for (byte b : body) {
                        chunk[3] = b;
                        o.write(chunk);
                    }
                    o.write("0\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
                    o.flush();
                    String head = readHead(s.getInputStream());
                    assertTrue(head.startsWith("HTTP/1.1 200"), head + stdout() + stderr());
                }
                MockUpstream.Received got = mock.take();
                assertEquals(payload, got.body().length);
                assertTrue(java.util.Arrays.equals(body, got.body()), "the body arrived changed");

                try (Socket s = post(port, "{\"model\":\"gpt-4o\",\"messages\":[]}", "Connection: close\r\n", 30_000)) {
                    String head = readHead(s.getInputStream());
                    assertTrue(head.startsWith("HTTP/1.1 200"), head);
                }
                assertTrue(p.isAlive(), "the proxy died: " + stdout() + stderr());
                assertFalse((stdout() + stderr()).contains("OutOfMemoryError"), stdout() + stderr());
            } finally {
                stop(p);
            }
        }
    }

    // ---- raw HTTP reading ----------------------------------------------------------------------------

    /** A connected socket that has sent a chat-completion POST with {@code body}. */
    private static Socket post(int port, String body, String extraHeaders, int readTimeoutMillis) throws IOException {
        Socket s = new Socket();
        try {
            s.connect(new InetSocketAddress("127.0.0.1", port), 5000);
            s.setSoTimeout(readTimeoutMillis);
            OutputStream o = s.getOutputStream();
            o.write(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + extraHeaders + "Content-Length: " + body.getBytes(StandardCharsets.UTF_8).length
                    + "\r\n\r\n" + body).getBytes(StandardCharsets.UTF_8));
            o.flush();
            return s;
        } catch (IOException e) {
            s.close();
            throw e;
        }
    }

    private static String readHead(InputStream in) throws IOException {
        ByteArrayOutputStream head = new ByteArrayOutputStream();
        int last4 = 0;
        int b;
        while ((b = in.read()) >= 0) {
            head.write(b);
            last4 = (last4 << 8) | b;
            if (last4 == 0x0d0a0d0a) {
                return head.toString(StandardCharsets.ISO_8859_1);
            }
        }
        throw new EOFException("connection closed inside the response head: " + head.toString(StandardCharsets.ISO_8859_1));
    }

    private static String readLine(InputStream in) throws IOException {
        StringBuilder b = new StringBuilder();
        int c;
        while ((c = in.read()) >= 0) {
            if (c == '\n') {
                int n = b.length();
                if (n > 0 && b.charAt(n - 1) == '\r') {
                    b.setLength(n - 1);
                }
                return b.toString();
            }
            b.append((char) c);
        }
        throw new EOFException("the stream ended inside a line");
    }

    /** Reads one chunk; its framing goes to {@code raw}, its payload to {@code data}. True at the last chunk. */
    private static boolean readChunk(InputStream in, ByteArrayOutputStream raw, ByteArrayOutputStream data)
            throws IOException {
        String sizeLine = readLine(in);
        raw.write((sizeLine + "\r\n").getBytes(StandardCharsets.ISO_8859_1));
        int size = Integer.parseInt(sizeLine.trim().split(";")[0], 16);
        if (size == 0) {
            String trailerEnd = readLine(in);
            assertEquals("", trailerEnd, "unexpected trailer");
            raw.write("\r\n".getBytes(StandardCharsets.ISO_8859_1));
            return true;
        }
        byte[] payload = in.readNBytes(size);
        if (payload.length < size) {
            throw new EOFException("the stream ended inside a chunk");
        }
        raw.write(payload);
        data.write(payload);
        String crlf = readLine(in);
        assertEquals("", crlf, "chunk not followed by CRLF");
        raw.write("\r\n".getBytes(StandardCharsets.ISO_8859_1));
        return false;
    }
}
