package io.megallm.proxy.server.deploy;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The deployment files read as text, without Docker: what the deployment audit found wrong in
 * them stays fixed. (Whether Docker, Nginx and Compose accept them is the other deploy tests'
 * work.)
 */
class DeployFilesTest {

    static String read(String relative) throws IOException {
        return Files.readString(DeployTestSupport.ROOT.resolve(relative), StandardCharsets.UTF_8);
    }

    // ---- logrotate --------------------------------------------------------------------------

    /** The paths of the file's one block: the words before its "{". */
    private static List<String> logrotatePaths(String text) {
        List<String> paths = new ArrayList<>();
        for (String line : text.split("\n")) {
            String t = line.strip();
            if (t.startsWith("#") || !t.endsWith("{")) {
                continue;
            }
            for (String word : t.substring(0, t.length() - 1).strip().split("\\s+")) {
                paths.add(word);
            }
        }
        return paths;
    }

    @Test
    void logrotateListsOnlyTheLiveFiles() throws IOException {
        // A glob such as logs/*.log also matches logback's rolled files (app.2026-12-07.0.log,
        // each just over 100 MB): logrotate copied them, and the app never deletes the copies.
        assertEquals(List.of("/opt/megallm-proxy/logs/app.log", "/opt/megallm-proxy/logs/access.log"),
                logrotatePaths(read("docker/logrotate/megallm-proxy")));
    }

    @Test
    void logrotateDryRunConsidersTheLiveFilesOnly(@TempDir Path dir) throws Exception {
        Path logrotate = Path.of("/usr/sbin/logrotate");
        assumeTrue(Files.isExecutable(logrotate), "logrotate is not installed here");
        Path logs = Files.createDirectories(dir.resolve("logs"));
        for (String name : List.of("app.log", "access.log", "app.2026-12-06.0.log", "access.2026-12-06.0.log",
                "access.2026-12-07.1.log")) {
            try (RandomAccessFile f = new RandomAccessFile(logs.resolve(name).toFile(), "rw")) {
                f.setLength(105L * 1024 * 1024); // sparse: over the file's 100M, costs no disk
            }
        }
        Path conf = dir.resolve("megallm-proxy");
        Files.writeString(conf, read("docker/logrotate/megallm-proxy").replace("/opt/megallm-proxy/logs", logs.toString()));
        Process p = new ProcessBuilder(logrotate.toString(), "-d", "-s", dir.resolve("state").toString(), conf.toString())
                .redirectErrorStream(true).start();
        p.getOutputStream().close();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(30, TimeUnit.SECONDS), out);
        List<String> considered = new ArrayList<>();
        Matcher m = Pattern.compile("considering log (\\S+)").matcher(out);
        while (m.find()) {
            considered.add(Path.of(m.group(1)).getFileName().toString());
        }
        assertEquals(List.of("app.log", "access.log"), considered, out);
        assertTrue(out.contains("log needs rotating"), out);
    }

    // ---- nginx ------------------------------------------------------------------------------

    /** The number after a directive's name (its first occurrence outside comments). */
    static long directive(String conf, String name) {
        Matcher m = Pattern.compile("(?m)^\\s*" + Pattern.quote(name) + "\\s+(\\d+)\\s*;").matcher(conf);
        assertTrue(m.find(), "no '" + name + " N;' in the file");
        return Long.parseLong(m.group(1));
    }

    @Test
    void theScaleNginxHoldsTenThousandStreams() throws IOException {
        String conf = read("docker/nginx/megallm-proxy-scale.conf");
        long connections = directive(conf, "worker_connections");
        long nofile = directive(conf, "worker_rlimit_nofile");
        // §12: 10,000 streams, two connections each; workers do not share them evenly.
        assertTrue(connections >= 16384, "worker_connections " + connections);
        assertTrue(nofile >= 2 * connections, "worker_rlimit_nofile " + nofile + " for " + connections + " connections");
        String nginx = service(read("docker/docker-compose.scale.yml"), "nginx");
        assertTrue(nginx.contains("nofile:\n        soft: 65536\n        hard: 65536"), nginx);
        assertTrue(nofile < 65536, "worker_rlimit_nofile must fit under the container's limit");
    }

    @Test
    void theScaleNginxStopsGracefullyWithinTheProxiesDrain() throws IOException {
        String nginx = service(read("docker/docker-compose.scale.yml"), "nginx");
        // SIGTERM is Nginx's fast stop (streams cut); SIGQUIT its graceful one.
        assertTrue(nginx.contains("    stop_signal: SIGQUIT\n"), nginx);
        assertTrue(nginx.contains("    stop_grace_period: 40s\n"), nginx);
        Matcher m = Pattern.compile("(?m)^worker_shutdown_timeout (\\d+)s;").matcher(read("docker/nginx/megallm-proxy-scale.conf"));
        assertTrue(m.find(), "worker_shutdown_timeout");
        int timeout = Integer.parseInt(m.group(1));
        assertTrue(timeout > 30 && timeout < 40, "worker_shutdown_timeout " + timeout
                + "s: past SHUTDOWN_GRACE (30 s), within stop_grace_period (40 s)");
    }

    @Test
    void bothNginxConfigsAnswerTheirOwnErrorsInTheProxysShape() throws IOException {
        for (String file : List.of("docker/nginx/megallm-proxy.conf", "docker/nginx/megallm-proxy-scale.conf")) {
            String conf = read(file);
            assertTrue(!conf.matches("(?s).*\\n\\s*proxy_intercept_errors\\s+on.*"), file + ": the proxy's own errors pass through");
            for (int code : new int[]{400, 405, 413, 414, 501, 502, 503, 504, 505}) {
                assertTrue(conf.contains("error_page " + code + " /__megallm_error_" + code + ";"), file + ": " + code);
                Matcher m = Pattern.compile("location = /__megallm_error_" + code + " \\{\\s*internal;\\s*default_type application/json;"
                        + "\\s*return " + code + " '(\\{\"error\":\\{\"message\":\"[^\"]+\",\"type\":\"[a-z_]+\",\"code\":\"[a-z_]+\"\\}\\})\\\\n';")
                        .matcher(conf);
                assertTrue(m.find(), file + ": no JSON answer for " + code);
            }
            // Nginx's buffers no smaller than the proxy's head limits, and its refusals in the shape too
            // (NativeNginxFrontTest runs the single config through a real nginx).
            assertTrue(conf.contains("large_client_header_buffers 4 16k;"), file);
            assertTrue(conf.contains("error_page 414 /__megallm_error_414;"), file);
            assertTrue(conf.contains("error_page 494 =431 /__megallm_error_431;"), file);
        }
    }

    @Test
    void nginxAcceptsBothConfigs(@TempDir Path dir) throws Exception {
        assumeTrue(Files.isExecutable(Path.of("/usr/sbin/nginx")), "nginx is not installed here");
        assumeTrue(Files.isRegularFile(Path.of("/etc/nginx/mime.types")), "no /etc/nginx/mime.types here");
        Files.writeString(dir.resolve("site.conf"), read("docker/nginx/megallm-proxy.conf"));
        Files.writeString(dir.resolve("main.conf"), """
                pid /tmp/nginx-deployfilestest.pid;
                events { worker_connections 256; }
                http { include /etc/nginx/mime.types; include %s; }
                """.formatted(dir.resolve("site.conf")));
        Files.writeString(dir.resolve("scale.conf"), read("docker/nginx/megallm-proxy-scale.conf"));
        for (String conf : List.of("main.conf", "scale.conf")) {
            Process p = new ProcessBuilder("/usr/sbin/nginx", "-t", "-q", "-e", "stderr", "-p", dir.toString(),
                    "-c", dir.resolve(conf).toString()).redirectErrorStream(true).start();
            p.getOutputStream().close();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertTrue(p.waitFor(30, TimeUnit.SECONDS), out);
            assertEquals(0, p.exitValue(), conf + ": " + out);
        }
    }

    // ---- compose ----------------------------------------------------------------------------

    /** The block of {@code key} (a line "key:" at {@code indent} spaces) de-indented, without the key line. */
    static String block(String text, String key, int indent) {
        String head = " ".repeat(indent) + key + ":";
        StringBuilder out = new StringBuilder();
        boolean in = false;
        for (String line : text.split("\n", -1)) {
            if (in) {
                if (!line.isBlank() && !line.startsWith(" ".repeat(indent + 1))) {
                    break;
                }
                if (!line.strip().startsWith("#")) {
                    out.append(line.substring(Math.min(line.length(), indent))).append('\n');
                }
            } else if (line.equals(head) || line.startsWith(head + " &")) {
                in = true;
            }
        }
        assertTrue(in, "no '" + head + "'");
        return out.toString();
    }

    @Test
    void theScaledProxiesGetEverySettingTheSingleServiceGets() throws IOException {
        // docker-compose.yml: "- NAME" (from .env when set there) or "- NAME=value".
        Map<String, String> single = new LinkedHashMap<>();
        Matcher m = Pattern.compile("(?m)^  - ([A-Z_]+)(=.*)?$").matcher(block(service(read("docker-compose.yml"),
                "megallm-proxy"), "environment", 4));
        while (m.find()) {
            single.put(m.group(1), m.group(2) == null ? "" : m.group(2).substring(1));
        }
        // The scale file: one anchor, "NAME:" (from .env) or "NAME: value".
        String scale = read("docker/docker-compose.scale.yml");
        Map<String, String> anchor = new LinkedHashMap<>();
        m = Pattern.compile("(?m)^  ([A-Z_]+):(.*)$").matcher(block(scale, "x-proxy-env", 0));
        while (m.find()) {
            anchor.put(m.group(1), m.group(2).strip().replaceAll("^\"|\"$", ""));
        }
        assertTrue(single.size() > 25, single.toString());
        for (Map.Entry<String, String> e : single.entrySet()) {
            String name = e.getKey();
            if (name.equals("PORT")) {
                continue; // per instance
            }
            assertTrue(anchor.containsKey(name), name + " is not passed to the scaled proxies");
            if (!Set.of("HOST", "KEY_STATE_FILE").contains(name)) {
                assertEquals(e.getValue(), anchor.get(name), name + ": another default than docker-compose.yml's");
            }
        }
        Set<String> extra = new HashSet<>(anchor.keySet());
        extra.removeAll(single.keySet());
        assertEquals(Set.of("REDIS_URL"), extra);
        for (String name : List.of("proxy-8000", "proxy-8001", "proxy-8002")) {
            String env = block(service(scale, name), "environment", 4);
            assertTrue(env.startsWith("  <<: *proxy-env\n"), env);
            assertTrue(env.strip().lines().count() == 2 && env.contains("PORT:"), name + ": only PORT of its own: " + env);
        }
    }

    @Test
    void theSingleServiceIsPublishedOnLoopbackOnly() throws IOException {
        // "8000:8000" published on every interface, and PROXY_API_KEYS is optional: an open relay.
        List<String> ports = block(service(read("docker-compose.yml"), "megallm-proxy"), "ports", 4).lines()
                .map(String::strip).toList();
        assertEquals(List.of("- \"127.0.0.1:8000:8000\""), ports);
    }

    @Test
    void theProxiesMayOpenTwentyThousandFiles() throws IOException {
        String nofile = "  nofile:\n    soft: 65536\n    hard: 65536\n";
        assertEquals(nofile, block(service(read("docker-compose.yml"), "megallm-proxy"), "ulimits", 4));
        assertEquals(nofile, block(block(read("docker/docker-compose.scale.yml"), "x-proxy", 0), "ulimits", 2));
    }

    @Test
    void eachScaledProxyHasTheSingleServicesLimits() throws IOException {
        String single = block(service(read("docker-compose.yml"), "megallm-proxy"), "deploy", 4);
        String proxy = block(read("docker/docker-compose.scale.yml"), "x-proxy", 0);
        assertTrue(single.contains("memory: 2G"), single);
        assertEquals(single, block(proxy, "deploy", 2));
        // Each instance takes the anchor as a whole (and overrides no limit of it).
        String scale = read("docker/docker-compose.scale.yml");
        for (String name : List.of("proxy-8000", "proxy-8001", "proxy-8002")) {
            String s = service(scale, name);
            assertTrue(s.contains("    <<: *proxy\n") && !s.contains("deploy:"), s);
        }
    }

    /** One service's block of a compose file: from "  name:" to the next line indented by two. */
    static String service(String compose, String name) {
        String[] lines = compose.split("\n", -1);
        StringBuilder out = new StringBuilder();
        boolean in = false;
        for (String line : lines) {
            if (in && (line.matches("  \\S.*") || line.matches("\\S.*"))) {
                break;
            }
            if (line.equals("  " + name + ":")) {
                in = true;
            }
            if (in) {
                out.append(line).append('\n');
            }
        }
        assertTrue(in, "no service " + name);
        return out.toString();
    }
}
