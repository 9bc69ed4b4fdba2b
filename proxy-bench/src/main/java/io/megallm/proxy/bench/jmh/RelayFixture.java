package io.megallm.proxy.bench.jmh;

import io.megallm.proxy.server.ProxyServer;
import io.megallm.proxy.server.config.ConfigLoader;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

/**
 * The real proxy ({@link ProxyServer}, as {@code Main} builds it, inside the benchmark JVM)
 * between two blocking loopback sockets that the benchmark thread drives itself: the
 * "client", connected to the proxy, and the "upstream", the connection the proxy opened to a
 * listening socket of the fixture. The benchmark thread writes and reads with pre-filled
 * direct buffers and scans bytes in place, so it allocates nothing per operation: whatever
 * the GC profiler counts per operation is the proxy's (its event loops), plus the background
 * threads of the JVM.
 */
final class RelayFixture implements AutoCloseable {

    static final String BODY_NON_STREAM =
            "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}";
    static final String BODY_STREAM =
            "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}";

    final Path dir;
    final ProxyServer proxy;
    final ServerSocketChannel upstreamListener;
    SocketChannel client;
    SocketChannel upstream;

    RelayFixture() throws Exception {
        BenchLogging.quiet();
        dir = Files.createTempDirectory("megallm-relay-bench-");
        Files.writeString(dir.resolve("keys.txt"), "sk-bench-relay-key-0001-aaaaaaaaaaaaaaaa\n"
                + "sk-bench-relay-key-0002-bbbbbbbbbbbbbbbb\n");
        upstreamListener = ServerSocketChannel.open();
        upstreamListener.bind(new InetSocketAddress("127.0.0.1", 0));
        int upstreamPort = ((InetSocketAddress) upstreamListener.getLocalAddress()).getPort();
        Map<String, String> env = new HashMap<>();
        env.put("MEGALLM_BASE_URL", "http://127.0.0.1:" + upstreamPort + "/v1");
        env.put("HOST", "127.0.0.1");
        env.put("PORT", "0");
        env.put("KEYS_FILE", dir.resolve("keys.txt").toString());
        env.put("LOG_DIR", dir.resolve("logs").toString());
        env.put("LOG_LEVEL", "WARNING");
        env.put("SHUTDOWN_GRACE", "1");
        proxy = new ProxyServer(ConfigLoader.load(env, dir)).start();
        client = SocketChannel.open(new InetSocketAddress("127.0.0.1", proxy.port()));
        client.setOption(StandardSocketOptions.TCP_NODELAY, true);
    }

    /** The proxy's first request opens its upstream connection; accept it. */
    void acceptUpstream() throws IOException {
        upstream = upstreamListener.accept();
        upstream.setOption(StandardSocketOptions.TCP_NODELAY, true);
    }

    static String request(String body, boolean stream) {
        return "POST /v1/chat/completions HTTP/1.1\r\n"
                + "Host: 127.0.0.1\r\n"
                + "User-Agent: OpenAI/Python 1.82.0\r\n"
                + "Accept: " + (stream ? "text/event-stream" : "application/json") + "\r\n"
                + "Content-Type: application/json\r\n"
                + "Authorization: Bearer sk-client-key\r\n"
                + "Content-Length: " + body.getBytes(StandardCharsets.UTF_8).length + "\r\n"
                + "\r\n"
                + body;
    }

    static ByteBuffer direct(String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        ByteBuffer buf = ByteBuffer.allocateDirect(b.length);
        buf.put(b).flip();
        return buf;
    }

    static void writeFully(SocketChannel ch, ByteBuffer buf) throws IOException {
        buf.position(0);
        while (buf.hasRemaining()) {
            ch.write(buf);
        }
    }

    /**
     * Reads until {@code framing} has seen one whole message. The exchange is in lock step, so
     * there is never a byte past the message; finding one is a broken fixture.
     */
    static void readMessage(SocketChannel ch, ByteBuffer scratch, Framing framing) throws IOException {
        for (;;) {
            scratch.clear();
            int n = ch.read(scratch);
            if (n < 0) {
                throw new IOException("connection closed while reading a message");
            }
            scratch.flip();
            if (framing.consume(scratch)) {
                if (scratch.hasRemaining()) {
                    throw new IllegalStateException(scratch.remaining() + " bytes past the end of a message");
                }
                return;
            }
        }
    }

    @Override
    public void close() {
        try {
            if (client != null) {
                client.close();
            }
            proxy.shutdown();
            if (upstream != null) {
                upstream.close();
            }
            upstreamListener.close();
            try (var paths = Files.walk(dir)) {
                paths.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * Finds the end of a message in a byte stream without allocating: a terminator pattern,
     * then {@code bodyLength} more bytes (0 for none).
     */
    static final class Framing {
        private final byte[] pattern;
        private final int bodyLength;
        private int matched;
        private int bodyLeft;
        private boolean inBody;

        private final int[] failure;

        Framing(String pattern, int bodyLength) {
            this.pattern = pattern.getBytes(StandardCharsets.US_ASCII);
            this.bodyLength = bodyLength;
            // Knuth-Morris-Pratt: how much of the pattern still matches after a mismatch.
            this.failure = new int[this.pattern.length];
            for (int i = 1, k = 0; i < this.pattern.length; i++) {
                while (k > 0 && this.pattern[i] != this.pattern[k]) {
                    k = failure[k - 1];
                }
                if (this.pattern[i] == this.pattern[k]) {
                    k++;
                }
                failure[i] = k;
            }
        }

        /** Consumes bytes up to the end of the message; true when it ended (position is just past it). */
        boolean consume(ByteBuffer buf) {
            while (buf.hasRemaining()) {
                if (inBody) {
                    int n = Math.min(bodyLeft, buf.remaining());
                    buf.position(buf.position() + n);
                    bodyLeft -= n;
                    if (bodyLeft == 0) {
                        inBody = false;
                        return true;
                    }
                    continue;
                }
                byte c = buf.get();
                while (matched > 0 && c != pattern[matched]) {
                    matched = failure[matched - 1];
                }
                if (c == pattern[matched]) {
                    matched++;
                }
                if (matched == pattern.length) {
                    matched = 0;
                    if (bodyLength == 0) {
                        return true;
                    }
                    inBody = true;
                    bodyLeft = bodyLength;
                }
            }
            return false;
        }
    }
}
