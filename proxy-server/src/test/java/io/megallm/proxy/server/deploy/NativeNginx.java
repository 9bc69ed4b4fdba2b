package io.megallm.proxy.server.deploy;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * This machine's own nginx binary (no Docker) running one of docker/nginx/'s site configs as
 * shipped, only its addresses adapted: the upstream's port becomes the proxy's, {@code listen 80}
 * a free loopback port. Temp folders and the pid file live in a folder of the test's own.
 */
final class NativeNginx implements AutoCloseable {

    static final Path BINARY = Path.of("/usr/sbin/nginx");

    final int port;
    private final Process process;
    private final Path dir;
    private final List<String> errors = new ArrayList<>();

    static boolean available() {
        return Files.isExecutable(BINARY);
    }

    /** Starts nginx with {@code docker/nginx/megallm-proxy.conf} in front of 127.0.0.1:{@code proxyPort}. */
    static NativeNginx site(int proxyPort) throws IOException, InterruptedException {
        String site = Files.readString(DeployTestSupport.ROOT.resolve("docker/nginx/megallm-proxy.conf"));
        int port = DeployTestSupport.freePort();
        String adapted = replaceOnce(replaceOnce(site,
                "server 127.0.0.1:8000 ", "server 127.0.0.1:" + proxyPort + " "),
                "    listen 80;", "    listen 127.0.0.1:" + port + ";");
        return new NativeNginx(adapted, port);
    }

    private NativeNginx(String site, int port) throws IOException, InterruptedException {
        this.port = port;
        this.dir = Files.createTempDirectory("megallm-nginx");
        Files.writeString(dir.resolve("site.conf"), site);
        String t = dir.toString();
        Files.writeString(dir.resolve("nginx.conf"), """
                worker_processes 1;
                pid %1$s/nginx.pid;
                error_log stderr notice;
                events { worker_connections 256; }
                http {
                    include /etc/nginx/mime.types;
                    access_log off;
                    client_body_temp_path %1$s/client_body;
                    proxy_temp_path %1$s/proxy;
                    fastcgi_temp_path %1$s/fastcgi;
                    uwsgi_temp_path %1$s/uwsgi;
                    scgi_temp_path %1$s/scgi;
                    include %1$s/site.conf;
                }
                """.formatted(t));
        process = new ProcessBuilder(BINARY.toString(), "-p", t, "-c", t + "/nginx.conf", "-e", "stderr",
                "-g", "daemon off;").redirectErrorStream(true).start();
        // Ready once the master has bound its sockets and started a worker: its own notice says so.
        BufferedReader out = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8));
        CompletableFuture<Boolean> ready = new CompletableFuture<>();
        Thread reader = new Thread(() -> {
            try {
                String line;
                while ((line = out.readLine()) != null) {
                    synchronized (errors) {
                        errors.add(line);
                    }
                    if (line.contains("start worker process ")) {
                        ready.complete(true);
                    }
                }
            } catch (IOException ignored) {
                // the process ended
            }
            ready.complete(false);
        }, "nginx-output");
        reader.setDaemon(true);
        reader.start();
        boolean started;
        try {
            started = ready.get(30, TimeUnit.SECONDS);
        } catch (Exception e) {
            started = false;
        }
        if (!started) {
            close();
            throw new IllegalStateException("nginx did not start: " + output());
        }
    }

    List<String> output() {
        synchronized (errors) {
            return List.copyOf(errors);
        }
    }

    private static String replaceOnce(String text, String from, String to) {
        int at = text.indexOf(from);
        assertTrue(at >= 0 && text.indexOf(from, at + 1) < 0, "exactly one '" + from + "' in the site config");
        return text.substring(0, at) + to + text.substring(at + from.length());
    }

    @Override
    public void close() throws InterruptedException {
        process.destroy();
        if (!process.waitFor(20, TimeUnit.SECONDS)) {
            process.destroyForcibly().waitFor();
        }
        DeployTestSupport.deleteQuietly(dir);
    }
}
