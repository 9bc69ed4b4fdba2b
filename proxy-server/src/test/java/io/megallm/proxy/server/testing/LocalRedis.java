package io.megallm.proxy.server.testing;

import java.io.File;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * A real Redis for one test: Debian's {@code redis-server} started as a child process on a free
 * loopback port, without persistence, and stopped (or killed and started again on the same port)
 * by the test. A machine without the binary skips the test.
 */
public final class LocalRedis implements AutoCloseable {

    private final String binary;
    private final int port;
    /** Listening with TLS only, and the options that say so; empty for plain TCP. */
    private final List<String> tls;
    private final String password;
    private Process process;

    private LocalRedis(String binary, int port, List<String> tls, String password) {
        this.binary = binary;
        this.port = port;
        this.tls = tls;
        this.password = password;
    }

    /** Starts one, or skips the calling test when {@code redis-server} is not installed. */
    public static LocalRedis start() throws IOException, InterruptedException {
        LocalRedis r = new LocalRedis(binary(), freePort(), List.of(), null);
        r.startProcess();
        return r;
    }

    /**
     * One that speaks TLS only, with the certificate and key in {@code cert} and {@code key} (PEM),
     * and asks for {@code password}; skips the calling test when this redis-server was built
     * without TLS.
     */
    public static LocalRedis startTls(Path cert, Path key, String password) throws IOException, InterruptedException {
        String binary = binary();
        int port = freePort();
        LocalRedis r = new LocalRedis(binary, port, List.of("--port", "0", "--tls-port", Integer.toString(port),
                "--tls-cert-file", cert.toString(), "--tls-key-file", key.toString(),
                "--tls-ca-cert-file", cert.toString(), "--tls-auth-clients", "no"), password);
        try {
            r.startProcess();
        } catch (IOException e) {
            assumeTrue(false, "this redis-server does not start with --tls-port (built without TLS?): " + e.getMessage());
        }
        return r;
    }

    private static String binary() {
        String binary = find();
        assumeTrue(binary != null, "redis-server is not installed (apt-get install -y redis-server)");
        return binary;
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    private static String find() {
        for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin:/usr/sbin").split(File.pathSeparator)) {
            Path p = Path.of(dir, "redis-server");
            if (Files.isExecutable(p)) {
                return p.toString();
            }
        }
        for (String p : new String[]{"/usr/bin/redis-server", "/usr/sbin/redis-server", "/usr/local/bin/redis-server"}) {
            if (Files.isExecutable(Path.of(p))) {
                return p;
            }
        }
        return null;
    }

    public int port() {
        return port;
    }

    /** {@code redis://127.0.0.1:<port>}, or {@code rediss://:<password>@127.0.0.1:<port>} for a TLS one. */
    public String url() {
        return (tls.isEmpty() ? "redis://" : "rediss://") + (password == null ? "" : ":" + password + "@")
                + "127.0.0.1:" + port;
    }

    public boolean running() {
        return process != null && process.isAlive();
    }

    /** Starts the server again on the same port, empty (no persistence): as after a crash. */
    public void startProcess() throws IOException, InterruptedException {
        List<String> command = new ArrayList<>(List.of(binary, "--port", Integer.toString(port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no"));
        command.addAll(tls);
        if (password != null) {
            command.addAll(List.of("--requirepass", password));
        }
        process = new ProcessBuilder(command)
                .redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.DISCARD)
                .start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (System.nanoTime() < deadline) {
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress("127.0.0.1", port), 200);
                return;
            } catch (IOException e) {
                if (!process.isAlive()) {
                    throw new IOException("redis-server exited at start with " + process.exitValue());
                }
                Thread.sleep(20);
            }
        }
        throw new IOException("redis-server did not listen on " + port + " within 10 s");
    }

    /** Stops the server without closing a connection (SIGSTOP): Redis there, but answering nothing. */
    public void freeze() throws IOException, InterruptedException {
        signal("-STOP");
    }

    /** Lets a frozen server go on (SIGCONT). */
    public void thaw() throws IOException, InterruptedException {
        signal("-CONT");
    }

    private void signal(String which) throws IOException, InterruptedException {
        Process kill = new ProcessBuilder("kill", which, Long.toString(process.pid())).inheritIO().start();
        if (kill.waitFor() != 0) {
            throw new IOException("kill " + which + " " + process.pid() + " failed");
        }
    }

    /** Kills the server at once (SIGKILL): Redis gone mid-run, no goodbye. */
    public void kill() throws InterruptedException {
        if (process != null) {
            process.destroyForcibly();
            process.waitFor(10, TimeUnit.SECONDS);
        }
    }

    @Override
    public void close() throws InterruptedException {
        kill();
    }
}
