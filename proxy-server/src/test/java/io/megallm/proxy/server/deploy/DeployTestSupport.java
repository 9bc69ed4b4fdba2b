package io.megallm.proxy.server.deploy;

import com.github.dockerjava.api.DockerClient;
import com.github.dockerjava.api.command.BuildImageCmd;
import com.github.dockerjava.api.command.InspectContainerResponse;
import com.github.dockerjava.api.model.HealthCheck;
import org.testcontainers.DockerClientFactory;
import org.testcontainers.containers.BindMode;
import org.testcontainers.containers.Container;
import org.testcontainers.containers.GenericContainer;
import org.testcontainers.containers.wait.strategy.AbstractWaitStrategy;
import org.testcontainers.containers.wait.strategy.Wait;
import org.testcontainers.images.builder.ImageFromDockerfile;
import org.testcontainers.utility.DockerImageName;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
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
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.function.IntConsumer;
import java.util.function.Predicate;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Shared pieces of the deployment tests: the image, built once per test JVM from
 * {@code docker/Dockerfile} with the repository root as context (what users build), containers
 * on host networking talking to 127.0.0.1 only, and an HTTP client that timestamps SSE events.
 */
final class DeployTestSupport {

    /** The repository root: holds docker/Dockerfile and docker-compose.yml. */
    static final Path ROOT = findRoot();
    static final String IMAGE = "megallm-proxy-test:latest";
    static final String STREAM_BODY = "{\"model\":\"gpt-4o-mini\",\"stream\":true,"
            + "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}";
    static final String KEY = "sk-mega-deploy-test-key-0001";

    static final HttpClient HTTP = HttpClient.newBuilder()
            .version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(5))
            .build();

    private static Boolean dockerAvailable;
    private static String builtImage;
    private static long buildMillis;

    private DeployTestSupport() {
    }

    /**
     * Whether this machine has a usable Docker engine (false when .ci/run set
     * MEGALLM_DOCKER_TESTS=skip because the sandbox engine did not come up). A class's
     * {@code @BeforeAll} returns early without one, and {@link #assumeDocker()} in its
     * {@code @BeforeEach} then skips each test, so that the summary counts them as skipped
     * instead of reporting "Tests run: 0".
     */
    static synchronized boolean dockerUsable() {
        if (dockerAvailable == null) {
            boolean ok;
            if ("skip".equals(System.getenv("MEGALLM_DOCKER_TESTS"))) {
                ok = false;  // .ci/run: the engine or its base images could not be set up
            } else {
                try {
                    ok = DockerClientFactory.instance().isDockerAvailable();
                } catch (RuntimeException | Error e) {
                    ok = false;
                }
            }
            dockerAvailable = ok;
            if (!ok) {
                System.out.println("[deploy] no usable Docker engine: the deployment tests are skipped"
                        + " (on a build machine: ../shared/tools/docker-sandbox up, then"
                        + " eval \"$(../shared/tools/docker-sandbox env)\" before mvn)");
            }
        }
        return dockerAvailable;
    }

    /** Skips the calling test when there is no usable Docker engine. */
    static void assumeDocker() {
        assumeTrue(dockerUsable(), "no Docker engine: deployment test skipped");
    }

    static DockerClient docker() {
        return DockerClientFactory.instance().client();
    }

    /** Builds docker/Dockerfile once per JVM (builds take minutes on a small machine). */
    static synchronized String image() {
        if (builtImage == null) {
            long start = System.nanoTime();
            builtImage = new ImageFromDockerfile(IMAGE, false) {
                @Override
                protected void configure(BuildImageCmd cmd) {
                    // The context is the repository root, as in `docker build -f docker/Dockerfile .`
                    // and compose's `context: .`; .dockerignore there applies.
                    cmd.withBaseDirectory(ROOT.toFile());
                    super.configure(cmd);
                }
            }
                    .withDockerfile(ROOT.resolve("docker/Dockerfile"))
                    // This sandbox's engine has no bridge network: the Maven step needs the host's.
                    .withBuildImageCmdModifier(cmd -> cmd.withNetworkMode("host"))
                    .get();
            buildMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
            System.out.printf("[deploy] built %s from docker/Dockerfile in %.1f s%n", builtImage, buildMillis / 1000.0);
        }
        return builtImage;
    }

    /**
     * The proxy image on host networking, listening on 127.0.0.1:{@code port}, with the keys
     * file mounted read-only and the logs folder mounted read-write. Docker's health check keeps
     * the image's command; only its timing is shortened so that tests see a status in seconds.
     */
    static GenericContainer<?> proxy(int port, String upstreamBaseUrl, Path keysOnHost, Path logsOnHost) {
        GenericContainer<?> c = new GenericContainer<>(DockerImageName.parse(image()))
                .withNetworkMode("host")
                .withEnv("HOST", "127.0.0.1")
                .withEnv("PORT", Integer.toString(port))
                .withEnv("MEGALLM_BASE_URL", upstreamBaseUrl)
                .withFileSystemBind(keysOnHost.toString(), "/app/data/keys.txt", BindMode.READ_ONLY)
                .withFileSystemBind(logsOnHost.toString(), "/app/logs", BindMode.READ_WRITE)
                .withCreateContainerCmdModifier(cmd -> cmd.withHealthcheck(new HealthCheck()
                        .withInterval(TimeUnit.SECONDS.toNanos(1))
                        .withTimeout(TimeUnit.SECONDS.toNanos(5))
                        .withStartPeriod(TimeUnit.SECONDS.toNanos(1))
                        .withRetries(2)))
                .waitingFor(Wait.forLogMessage(".*listening on .*\\n", 1).withStartupTimeout(Duration.ofSeconds(90)));
        return c;
    }

    /** Waits until a TCP connect to 127.0.0.1:port succeeds (for containers that log nothing on start). */
    static AbstractWaitStrategy portOpen(int port) {
        return new AbstractWaitStrategy() {
            @Override
            protected void waitUntilReady() {
                long deadline = System.nanoTime() + startupTimeout.toNanos();
                while (System.nanoTime() < deadline) {
                    try (Socket s = new Socket("127.0.0.1", port)) {
                        return;
                    } catch (IOException notYet) {
                        pause(100);
                    }
                }
                throw new IllegalStateException("nothing listens on 127.0.0.1:" + port + " after " + startupTimeout);
            }
        };
    }

    static int freePort() {
        try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * This machine's hard limit on open files (what the Docker engine here can give a container
     * at most; the sandbox's is 20000), or {@code Long.MAX_VALUE} when unknown. The shipped
     * compose files ask for {@code ulimits: nofile: 65536}, which runc cannot grant above it.
     */
    static long hardNofileLimit() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/limits"))) {
                if (line.startsWith("Max open files")) {
                    String hard = line.substring("Max open files".length()).trim().split("\\s+")[1];
                    return "unlimited".equals(hard) ? Long.MAX_VALUE : Long.parseLong(hard);
                }
            }
        } catch (IOException | RuntimeException unknown) {
            // not Linux
        }
        return Long.MAX_VALUE;
    }

    /**
     * The compose text with its {@code nofile} ulimits lowered to what this machine can grant,
     * when that is below the shipped 65536 (a test adaptation only: the shipped value is checked
     * by {@code DeployFilesTest}).
     */
    static String nofileForThisMachine(String compose) {
        long hard = hardNofileLimit();
        if (hard >= 65536) {
            return compose;
        }
        return compose.replace("soft: 65536", "soft: " + hard).replace("hard: 65536", "hard: " + hard);
    }

    /** A fresh folder under target/ for bind mounts (the daemon runs on this machine). */
    static Path workDir(String name) {
        try {
            Path base = Path.of("").toAbsolutePath().resolve("deploy-tests");
            Files.createDirectories(base);
            Path dir = Files.createTempDirectory(base, name + "-");
            dir.toFile().setWritable(true, false);
            return dir;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Best effort: files the container wrote as uid 10001 or root may not be ours to delete. */
    static void deleteQuietly(Path dir) {
        if (dir == null || !Files.exists(dir)) {
            return;
        }
        try (Stream<Path> walk = Files.walk(dir)) {
            walk.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException | UncheckedIOException ignored) {
            // left under target/ for `mvn clean`
        }
    }

    static Path keysFile(Path dir, String... keys) {
        try {
            Path data = Files.createDirectories(dir.resolve("data"));
            Path file = data.resolve("keys.txt");
            Files.writeString(file, String.join("\n", keys) + "\n");
            return file;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static Path logsDir(Path dir) {
        try {
            // Created by "the operator" (here: the test user) with the usual 755: the image's
            // entry point must make it writable for uid 10001 by itself.
            return Files.createDirectories(dir.resolve("logs"));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static HttpResponse<String> get(int port, String path, Map<String, String> headers) {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
                .timeout(Duration.ofSeconds(20)).GET();
        headers.forEach(b::header);
        return send(b.build());
    }

    static HttpResponse<String> post(int port, String path, Map<String, String> headers, byte[] body) {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
                .timeout(Duration.ofSeconds(60)).POST(HttpRequest.BodyPublishers.ofByteArray(body));
        headers.forEach(b::header);
        return send(b.build());
    }

    private static HttpResponse<String> send(HttpRequest request) {
        try {
            return HTTP.send(request, HttpResponse.BodyHandlers.ofString());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    /** One SSE line as the client saw it, {@code millis} after the request was sent. */
    record Event(String data, long millis) {
    }

    record SseStream(HttpResponse<InputStream> response, List<Event> events, long headMillis) {
        long first() {
            return events.get(0).millis();
        }

        long last() {
            return events.get(events.size() - 1).millis();
        }

        List<String> data() {
            return events.stream().map(Event::data).toList();
        }
    }

    /**
     * POSTs a streaming chat request and reads the answer line by line as it arrives, until the
     * server ends the response. {@code afterEvent} runs after each data line with its index.
     * Throws if the response ends without HTTP's own end (chunked terminator): a cut stream.
     */
    static SseStream streamChat(int port, IntConsumer afterEvent) throws IOException, InterruptedException {
        return streamChat(port, STREAM_BODY, afterEvent);
    }

    /** {@link #streamChat(int, IntConsumer)} with a request body of the caller's. */
    static SseStream streamChat(int port, String body, IntConsumer afterEvent) throws IOException, InterruptedException {
        HttpRequest request = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/v1/chat/completions"))
                .timeout(Duration.ofSeconds(60))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body))
                .build();
        long start = System.nanoTime();
        HttpResponse<InputStream> response = HTTP.send(request, HttpResponse.BodyHandlers.ofInputStream());
        long head = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
        assertEquals(200, response.statusCode(), "status of the streamed request");
        List<Event> events = new ArrayList<>();
        try (BufferedReader in = new BufferedReader(new InputStreamReader(response.body(), StandardCharsets.UTF_8))) {
            String line;
            while ((line = in.readLine()) != null) {
                if (line.startsWith("data:")) {
                    events.add(new Event(line.substring(5).trim(), TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start)));
                    afterEvent.accept(events.size() - 1);
                }
            }
        }
        return new SseStream(response, events, head);
    }

    static Container.ExecResult exec(GenericContainer<?> c, String... command) {
        try {
            return c.execInContainer(command);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    static InspectContainerResponse inspect(String containerId) {
        return docker().inspectContainerCmd(containerId).exec();
    }

    static String healthStatus(String containerId) {
        InspectContainerResponse.ContainerState state = inspect(containerId).getState();
        return state.getHealth() == null ? "none" : state.getHealth().getStatus();
    }

    /** Polls Docker's health status (Docker offers no event wait here), bounded. */
    static String awaitHealth(String containerId, String wanted, Duration timeout) {
        return awaitValue(() -> healthStatus(containerId), wanted::equals, timeout);
    }

    static <T> T awaitValue(java.util.function.Supplier<T> probe, Predicate<T> done, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        T value = probe.get();
        while (!done.test(value) && System.nanoTime() < deadline) {
            pause(250);
            value = probe.get();
        }
        return value;
    }

    /** A bounded poll's pause between two probes. */
    static void pause(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    /** A unique suffix for names of things this run creates in Docker. */
    static String runId() {
        return UUID.randomUUID().toString().replace("-", "").substring(0, 10);
    }

    private static Path findRoot() {
        Path p = Path.of("").toAbsolutePath();
        while (p != null) {
            if (Files.isRegularFile(p.resolve("docker/Dockerfile")) && Files.isRegularFile(p.resolve("docker-compose.yml"))) {
                return p;
            }
            p = p.getParent();
        }
        throw new IllegalStateException("no repository root (docker/Dockerfile) above " + Path.of("").toAbsolutePath());
    }
}
