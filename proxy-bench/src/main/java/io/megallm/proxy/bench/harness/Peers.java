package io.megallm.proxy.bench.harness;

import io.megallm.proxy.bench.MockUpstreamServer;
import io.megallm.proxy.server.ProxyServer;
import io.megallm.proxy.server.config.ConfigLoader;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/** Starts the mock upstream and the peers the harness compares. */
public final class Peers {

    public static final String DIRECT = "direct";
    public static final String NGINX = "nginx";
    public static final String HAPROXY = "haproxy";
    public static final String PROXY = "proxy";
    /** Our proxy run as the Docker image runs it: Temurin 25 with the image's JDK_JAVA_OPTIONS. */
    public static final String PROXY_IMAGE = "proxy-image";

    /**
     * The Docker image's {@code JDK_JAVA_OPTIONS} (docker/Dockerfile; ExternalLoadTest keeps the two equal).
     * The harness runs the image's JVM directly with them rather than the container: the other
     * peers run as plain processes pinned to one core, and a container adds a network namespace
     * hop (host networking aside) and seccomp, which would be measured with it.
     */
    public static final String IMAGE_JDK_JAVA_OPTIONS =
            "-XX:MaxRAMPercentage=50 -XX:+UseParallelGC -XX:TrimNativeHeapInterval=10000 -XX:+ExitOnOutOfMemoryError --enable-native-access=ALL-UNNAMED";

    /**
     * The memory the JVM would see in the container: docker-compose.yml's {@code memory: 2G}. Run
     * directly on a 24 GB host, MaxRAMPercentage=50 would give a 12 GB heap that Parallel GC's
     * adaptive sizing grows into (2.5 GB RSS with 9,500 held streams), which no container has.
     */
    static final String IMAGE_MAX_RAM = "-XX:MaxRAM=2g";

    /** Where the image's JVM (Temurin 25) is looked for; {@code MEGALLM_BENCH_IMAGE_JAVA} overrides. */
    static final List<String> IMAGE_JAVA_CANDIDATES = List.of(
            "/usr/lib/jvm/temurin-25-jdk-amd64/bin/java", "/usr/lib/jvm/temurin-25-jre-amd64/bin/java",
            "/opt/java/openjdk/bin/java");

    /** The pool keys every proxying peer rotates over (the mock accepts any key). */
    public static final List<String> KEYS = List.of(
            "sk-bench-key-0001-aaaaaaaaaaaaaaaaaaaa", "sk-bench-key-0002-bbbbbbbbbbbbbbbbbbbb",
            "sk-bench-key-0003-cccccccccccccccccccc", "sk-bench-key-0004-dddddddddddddddddddd",
            "sk-bench-key-0005-eeeeeeeeeeeeeeeeeeee", "sk-bench-key-0006-ffffffffffffffffffff",
            "sk-bench-key-0007-gggggggggggggggggggg", "sk-bench-key-0008-hhhhhhhhhhhhhhhhhhhh");

    private Peers() {
    }

    /** One peer under test: where the load goes, and the process whose memory and CPU are read. */
    public record Peer(String name, String description, int port, Service service) {
        public long pid() {
            return service == null ? -1 : service.pid();
        }
    }

    // ---- mock -------------------------------------------------------------------------------

    public static Service mockProcess(Path dir, Pinning pin, String classpath) throws IOException {
        int port = ProcessService.freePort();
        List<String> cmd = pin.wrap(List.of(Tools.java(), "-Xms256m", "-cp", classpath,
                "io.megallm.proxy.bench.BenchMain", "mock", Integer.toString(port), "20", "50", "1"), pin.mockCpus());
        return ProcessService.start("mock", cmd, Map.of(), dir.resolve("mock"), port, 30_000);
    }

    public static Service mockInProcess() throws InterruptedException {
        MockUpstreamServer mock = new MockUpstreamServer(20, 50).start("127.0.0.1", 0, 1);
        return new Service() {
            @Override
            public String name() {
                return "mock";
            }

            @Override
            public int port() {
                return mock.port();
            }

            @Override
            public long pid() {
                return -1;
            }

            @Override
            public String describe() {
                return "MockUpstreamServer inside the harness JVM";
            }

            @Override
            public void close() {
                mock.stop();
            }
        };
    }

    // ---- our proxy --------------------------------------------------------------------------

    public static Map<String, String> proxyEnv(int mockPort, int port, Path keysFile, Path logDir) {
        Map<String, String> env = new HashMap<>();
        env.put("MEGALLM_BASE_URL", "http://127.0.0.1:" + mockPort + "/v1");
        env.put("HOST", "127.0.0.1");
        env.put("PORT", Integer.toString(port));
        env.put("KEYS_FILE", keysFile.toString());
        env.put("LOG_LEVEL", "WARNING");
        env.put("LOG_DIR", logDir.toString());
        env.put("SHUTDOWN_GRACE", "1");
        return env;
    }

    static Path keysFile(Path dir) throws IOException {
        Files.createDirectories(dir);
        Path keys = dir.resolve("keys.txt");
        Files.writeString(keys, String.join("\n", KEYS) + "\n");
        return keys;
    }

    public static Peer proxyProcess(Path jar, List<String> jvmOptions, Path dir, Pinning pin, int mockPort)
            throws IOException {
        return proxyProcess(jar, jvmOptions, Map.of(), dir, pin, mockPort);
    }

    /** {@code extraEnv}: settings on top of the harness's (a what-if variant's switch). */
    public static Peer proxyProcess(Path jar, List<String> jvmOptions, Map<String, String> extraEnv, Path dir,
                                    Pinning pin, int mockPort) throws IOException {
        Path work = dir.resolve(PROXY);
        Path keys = keysFile(work);
        int port = ProcessService.freePort();
        List<String> java = new ArrayList<>();
        java.add(Tools.java());
        java.addAll(jvmOptions);
        java.add("-jar");
        java.add(jar.toAbsolutePath().toString());
        // The working directory is a fresh temp dir: no .env or config/application.conf is read.
        Map<String, String> env = proxyEnv(mockPort, port, keys, work.resolve("logs"));
        env.putAll(extraEnv);
        ProcessService s = ProcessService.start(PROXY, pin.wrap(java, pin.peerCpus()), env, work, port, 60_000);
        return new Peer(PROXY, "megallm-proxy (" + jar.getFileName() + ", own process"
                + (jvmOptions.isEmpty() ? ", JVM defaults" : ", JVM " + String.join(" ", jvmOptions))
                + "; LOG_LEVEL=WARNING, access log on as shipped: every line to access.log, at most"
                + " ACCESS_LOG_CONSOLE_RATE (100) a second to the console)", port, s);
    }

    /** The java launcher of the image's JDK (Temurin 25), or null when this machine has none. */
    public static String imageJava() {
        String env = System.getenv("MEGALLM_BENCH_IMAGE_JAVA");
        List<String> candidates = env != null && !env.isBlank() ? List.of(env) : IMAGE_JAVA_CANDIDATES;
        for (String c : candidates) {
            if (Files.isExecutable(Path.of(c))) {
                return c;
            }
        }
        return null;
    }

    /** Our proxy as the Docker image runs it: the image's JVM with its JDK_JAVA_OPTIONS, same settings otherwise. */
    public static Peer proxyImageProcess(Path jar, Path dir, Pinning pin, int mockPort) throws IOException {
        String java = imageJava();
        if (java == null) {
            throw new IOException("no Temurin 25 JVM found (" + String.join(", ", IMAGE_JAVA_CANDIDATES)
                    + "; or set MEGALLM_BENCH_IMAGE_JAVA)");
        }
        Path work = dir.resolve(PROXY_IMAGE);
        Path keys = keysFile(work);
        int port = ProcessService.freePort();
        List<String> cmd = List.of(java, IMAGE_MAX_RAM, "-jar", jar.toAbsolutePath().toString());
        Map<String, String> env = proxyEnv(mockPort, port, keys, work.resolve("logs"));
        env.put("JDK_JAVA_OPTIONS", IMAGE_JDK_JAVA_OPTIONS);
        ProcessService s = ProcessService.start(PROXY_IMAGE, pin.wrap(cmd, pin.peerCpus()), env, work, port, 60_000);
        return new Peer(PROXY_IMAGE, "megallm-proxy (" + jar.getFileName() + ", own process, the Docker image's JVM run "
                + "directly: " + java + " " + IMAGE_MAX_RAM + " (compose's memory limit) with JDK_JAVA_OPTIONS=\""
                + IMAGE_JDK_JAVA_OPTIONS + "\"; LOG_LEVEL=WARNING, "
                + "access log on as shipped: every line to access.log, at most ACCESS_LOG_CONSOLE_RATE (100) a"
                + " second to the console)", port, s);
    }

    /** Our proxy in either JVM. */
    public static boolean isProxy(String peer) {
        return peer.equals(PROXY) || peer.equals(PROXY_IMAGE);
    }

    public static Peer proxyInProcess(Path dir, int mockPort) throws Exception {
        Path work = dir.resolve(PROXY);
        Path keys = keysFile(work);
        int port = ProcessService.freePort();
        ProxyServer server = new ProxyServer(ConfigLoader.load(proxyEnv(mockPort, port, keys, work.resolve("logs")),
                work)).start();
        Service s = new InProcessProxy(PROXY, "ProxyServer inside the harness JVM", server);
        return new Peer(PROXY, "megallm-proxy (in the harness JVM)", server.port(), s);
    }

    // ---- Nginx ------------------------------------------------------------------------------

    /** The Nginx binary, or null. */
    public static String nginxBinary() {
        return Tools.which("nginx");
    }

    public static String nginxVersion() {
        String bin = nginxBinary();
        if (bin == null) {
            return null;
        }
        String out = Tools.run(List.of(bin, "-v"), 10).output();
        return out.replace("nginx version: ", "").trim();
    }

    static String nginxConfig(Path dir, int port, int mockPort, List<String> keys, boolean root) {
        StringBuilder split = new StringBuilder();
        int n = keys.size();
        for (int i = 0; i < n; i++) {
            // Nginx takes at most two decimals; the last key takes the rest ("*").
            String share = i == n - 1 ? "*" : String.format(Locale.ROOT, "%.2f%%", Math.floor(10000.0 / n) / 100);
            split.append("        ").append(share).append(" \"Bearer ").append(keys.get(i)).append("\";\n");
        }
        String d = dir.toAbsolutePath().toString();
        return (root ? "user root;\n" : "")
                + "worker_processes 1;\n"
                + "worker_rlimit_nofile " + fdLimit() + ";\n"
                + "error_log " + d + "/error.log warn;\n"
                + "pid " + d + "/nginx.pid;\n"
                + "events {\n    worker_connections " + (fdLimit() - 100) + ";\n    use epoll;\n}\n"
                + "http {\n"
                + "    access_log " + d + "/access.log;\n"
                + "    client_body_temp_path " + d + "/client_body;\n"
                + "    proxy_temp_path " + d + "/proxy_temp;\n"
                + "    fastcgi_temp_path " + d + "/fastcgi_temp;\n"
                + "    uwsgi_temp_path " + d + "/uwsgi_temp;\n"
                + "    scgi_temp_path " + d + "/scgi_temp;\n"
                + "    keepalive_timeout 300s;\n"
                + "    keepalive_requests 1000000;\n"
                + "    upstream megallm {\n"
                + "        server 127.0.0.1:" + mockPort + ";\n"
                + "        keepalive 100;\n"
                + "        keepalive_requests 1000000;\n"
                + "        keepalive_timeout 240s;\n"
                + "    }\n"
                + "    # A pool key per request, spread over the keys by the request id.\n"
                + "    split_clients \"${request_id}\" $megallm_key {\n"
                + split
                + "    }\n"
                + "    server {\n"
                + "        listen 127.0.0.1:" + port + " backlog=4096;\n"
                + "        location / {\n"
                + "            proxy_pass http://megallm;\n"
                + "            proxy_http_version 1.1;\n"
                + "            proxy_set_header Connection \"\";\n"
                + "            proxy_set_header Authorization $megallm_key;\n"
                + "            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
                + "            proxy_set_header X-Request-Id $request_id;\n"
                + "            proxy_buffering off;\n"
                + "            proxy_request_buffering off;\n"
                + "            proxy_read_timeout 300s;\n"
                + "            proxy_send_timeout 300s;\n"
                + "            client_max_body_size 10m;\n"
                + "        }\n"
                + "    }\n"
                + "}\n";
    }

    public static Peer nginx(Path dir, Pinning pin, int mockPort) throws IOException {
        String bin = nginxBinary();
        if (bin == null) {
            throw new IOException("nginx is not installed (apt-get install nginx)");
        }
        Path work = dir.resolve(NGINX);
        Files.createDirectories(work);
        int port = ProcessService.freePort();
        boolean root = "root".equals(System.getProperty("user.name"));
        Path conf = work.resolve("nginx.conf");
        Files.writeString(conf, nginxConfig(work, port, mockPort, KEYS, root));
        List<String> cmd = List.of(bin, "-p", work.toAbsolutePath() + "/", "-e", work.toAbsolutePath() + "/error.log",
                "-c", conf.toAbsolutePath().toString(), "-g", "daemon off;");
        ProcessService s = ProcessService.start(NGINX, pin.wrap(cmd, pin.peerCpus()), Map.of(), work, port, 20_000);
        return new Peer(NGINX, "Nginx " + nginxVersion() + " (1 worker, keepalive 100 to the mock, proxy_buffering off,"
                + " HTTP/1.1 upstream, Authorization from split_clients over $request_id, access_log on)", port, s);
    }

    // ---- HAProxy ----------------------------------------------------------------------------

    public static String haproxyBinary() {
        return Tools.which("haproxy");
    }

    public static String haproxyVersion() {
        String bin = haproxyBinary();
        if (bin == null) {
            return null;
        }
        String out = Tools.run(List.of(bin, "-v"), 10).output();
        String first = out.lines().findFirst().orElse("");
        String[] words = first.split("\\s+");
        return words.length > 2 ? words[2] : first;
    }

    /** Open files a peer may have: this process's hard limit (children inherit it), at most 65536. */
    static int fdLimit() {
        long hard = Procfs.maxOpenFilesHard();
        return (int) Math.max(1024, Math.min(65536, hard < 0 ? 65536 : hard));
    }

    /**
     * How many relayed connections (two sockets each) fit in a peer's open-files limit, with room
     * for listeners, idle upstream connections and files (Nginx refused some streams at 300 spare).
     */
    public static int maxRelayedConnections() {
        return (fdLimit() - 1000) / 2;
    }

    static String haproxyConfig(int port, int mockPort) {
        int maxconn = maxRelayedConnections();
        return "global\n"
                + "    nbthread 1\n"
                + "    maxconn " + maxconn + "\n"
                + "defaults\n"
                + "    mode tcp\n"
                + "    timeout connect 5s\n"
                + "    timeout client 300s\n"
                + "    timeout server 300s\n"
                + "frontend relay\n"
                + "    bind 127.0.0.1:" + port + "\n"
                + "    backlog 4096\n"
                + "    maxconn " + maxconn + "\n"
                + "    default_backend mock\n"
                + "backend mock\n"
                + "    server mock 127.0.0.1:" + mockPort + " maxconn " + maxconn + "\n";
    }

    public static Peer haproxy(Path dir, Pinning pin, int mockPort) throws IOException {
        String bin = haproxyBinary();
        if (bin == null) {
            throw new IOException("haproxy is not installed (apt-get install haproxy)");
        }
        Path work = dir.resolve(HAPROXY);
        Files.createDirectories(work);
        int port = ProcessService.freePort();
        Path conf = work.resolve("haproxy.cfg");
        Files.writeString(conf, haproxyConfig(port, mockPort));
        List<String> cmd = List.of(bin, "-db", "-f", conf.toAbsolutePath().toString());
        ProcessService s = ProcessService.start(HAPROXY, pin.wrap(cmd, pin.peerCpus()), Map.of(), work, port, 20_000);
        return new Peer(HAPROXY, "HAProxy " + haproxyVersion() + " (mode tcp, 1 thread: a plain TCP relay, no HTTP"
                + " parsing, no key injection: the floor for one extra hop)", port, s);
    }
}
