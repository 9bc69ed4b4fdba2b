package io.megallm.proxy.bench.harness;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/** A peer run as its own process, its output in a log file, stopped with SIGTERM (then SIGKILL). */
public final class ProcessService implements Service {

    private final String name;
    private final Process process;
    private final int port;
    private final Path log;
    private final String describe;

    private ProcessService(String name, Process process, int port, Path log, String describe) {
        this.name = name;
        this.process = process;
        this.port = port;
        this.log = log;
        this.describe = describe;
    }

    /**
     * Starts {@code command} and waits until {@code port} accepts connections.
     *
     * @throws IOException when it cannot start, exits, or does not listen within the time
     */
    public static ProcessService start(String name, List<String> command, Map<String, String> env, Path workDir,
                                       int port, long readyTimeoutMillis) throws IOException {
        Files.createDirectories(workDir);
        Path log = workDir.resolve(name + ".out");
        ProcessBuilder pb = new ProcessBuilder(command)
                .directory(workDir.toFile())
                .redirectErrorStream(true)
                .redirectOutput(log.toFile())
                .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
        pb.environment().putAll(env);
        Process p = pb.start();
        ProcessService s = new ProcessService(name, p, port, log, String.join(" ", command));
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(readyTimeoutMillis);
        while (true) {
            if (!p.isAlive()) {
                throw new IOException(name + " exited with code " + p.exitValue() + ": " + s.tail(20));
            }
            if (listening(port)) {
                return s;
            }
            if (System.nanoTime() > deadline) {
                s.close();
                throw new IOException(name + " did not listen on port " + port + " within " + readyTimeoutMillis
                        + " ms: " + s.tail(20));
            }
            sleep(50);
        }
    }

    static boolean listening(int port) {
        try (Socket sock = new Socket()) {
            sock.connect(new InetSocketAddress("127.0.0.1", port), 200);
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    /** A port that was free a moment ago (bind to 0, read, close). */
    public static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket()) {
            s.setReuseAddress(true);
            s.bind(new InetSocketAddress("127.0.0.1", 0));
            return s.getLocalPort();
        }
    }

    public String tail(int lines) {
        try {
            List<String> all = Files.readAllLines(log, StandardCharsets.UTF_8);
            return String.join("\n", all.subList(Math.max(0, all.size() - lines), all.size()));
        } catch (IOException e) {
            return "(no output)";
        }
    }

    public boolean alive() {
        return process.isAlive();
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public int port() {
        return port;
    }

    @Override
    public long pid() {
        return process.pid();
    }

    @Override
    public String describe() {
        return describe;
    }

    @Override
    public void close() {
        if (!process.isAlive()) {
            return;
        }
        List<ProcessHandle> kids = process.descendants().toList();
        process.destroy();
        try {
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                process.destroyForcibly();
                process.waitFor(5, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            process.destroyForcibly();
        }
        for (ProcessHandle k : kids) {
            if (k.isAlive()) {
                k.destroyForcibly();
            }
        }
    }

    static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        }
    }
}
