package io.megallm.proxy.bench.harness;

import java.io.EOFException;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.SocketTimeoutException;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import java.util.concurrent.TimeUnit;

/**
 * One keep-alive connection that sends the same request again and again and reads each answer
 * to its last byte: the load of the large-answer scenario. The body goes into one reused direct
 * buffer and is dropped, so the client's part of the time is the copy out of the socket, the
 * same for every peer. The answer must carry a Content-Length (every peer relays the mock's);
 * anything else is an error, not a guess. Every wait is bounded by a selector timeout.
 */
public final class LargeAnswerClient implements AutoCloseable {

    /** Big enough that a read takes whatever the socket holds (loopback buffers stay a few MB). */
    public static final int READ_BUFFER_BYTES = 1024 * 1024;
    private static final int MAX_HEAD = 16 * 1024;

    private final SocketChannel ch;
    private final Selector selector;
    private final SelectionKey key;
    private final ByteBuffer request;
    private final ByteBuffer buf;
    private final long timeoutNanos;

    /**
     * Connects (blocking, before any answer is timed). {@code request} is duplicated, not
     * consumed; {@code readBuffer} must be direct, at least {@value #MAX_HEAD} bytes, and is used
     * by this connection only while it is open.
     */
    public LargeAnswerClient(InetSocketAddress addr, ByteBuffer request, ByteBuffer readBuffer, long timeoutMillis)
            throws IOException {
        if (!readBuffer.isDirect() || readBuffer.capacity() < MAX_HEAD) {
            throw new IllegalArgumentException("needs a direct buffer of at least " + MAX_HEAD + " bytes");
        }
        this.request = request.duplicate();
        this.buf = readBuffer;
        this.timeoutNanos = TimeUnit.MILLISECONDS.toNanos(timeoutMillis);
        SocketChannel c = SocketChannel.open();
        Selector s = null;
        try {
            c.setOption(StandardSocketOptions.TCP_NODELAY, true);
            c.socket().connect(addr, (int) Math.min(Integer.MAX_VALUE, timeoutMillis));
            c.configureBlocking(false);
            s = Selector.open();
            key = c.register(s, 0);
        } catch (IOException | RuntimeException e) {
            c.close();
            if (s != null) {
                s.close();
            }
            throw e;
        }
        this.ch = c;
        this.selector = s;
    }

    /**
     * Sends the request and reads its answer to the last byte; returns the body's length. A
     * status other than 200, an answer without Content-Length, the peer closing early or the
     * timeout is an {@link IOException}, after which the connection is of no further use.
     */
    public long exchange() throws IOException {
        long deadline = System.nanoTime() + timeoutNanos;
        send(deadline);
        buf.clear();
        int headEnd;
        int scanned = 0;
        while ((headEnd = headEnd(buf, scanned)) < 0) {
            if (buf.position() >= MAX_HEAD) {
                throw new IOException("answer head longer than " + MAX_HEAD + " bytes");
            }
            scanned = Math.max(0, buf.position() - 3);
            buf.limit(MAX_HEAD);
            read(deadline);
        }
        long length = contentLength(head(headEnd));
        long body = buf.position() - (headEnd + 4L);
        if (body > length) {
            throw new IOException(String.format(Locale.ROOT, "%d bytes after a head of Content-Length %d", body, length));
        }
        // Never past this answer: a byte more would be the start of an answer no one asked for.
        while (body < length) {
            buf.clear();
            buf.limit((int) Math.min(buf.capacity(), length - body));
            body += read(deadline);
        }
        return length;
    }

    private void send(long deadline) throws IOException {
        request.rewind();
        while (request.hasRemaining()) {
            if (ch.write(request) == 0) {
                await(SelectionKey.OP_WRITE, deadline);
            }
        }
    }

    private int read(long deadline) throws IOException {
        for (;;) {
            int n = ch.read(buf);
            if (n > 0) {
                return n;
            }
            if (n < 0) {
                throw new EOFException("the peer closed the connection in the middle of an answer");
            }
            await(SelectionKey.OP_READ, deadline);
        }
    }

    private void await(int op, long deadline) throws IOException {
        long left = deadline - System.nanoTime();
        if (left <= 0) {
            throw new SocketTimeoutException("no answer within " + TimeUnit.NANOSECONDS.toMillis(timeoutNanos) + " ms");
        }
        key.interestOps(op);
        selector.select(Math.max(1, TimeUnit.NANOSECONDS.toMillis(left)));
        selector.selectedKeys().clear();
    }

    /** The index of the blank line's CRLFCRLF in {@code b}'s first {@code position} bytes, or -1. */
    private static int headEnd(ByteBuffer b, int from) {
        for (int i = from; i + 3 < b.position(); i++) {
            if (b.get(i) == '\r' && b.get(i + 1) == '\n' && b.get(i + 2) == '\r' && b.get(i + 3) == '\n') {
                return i;
            }
        }
        return -1;
    }

    private String head(int end) {
        byte[] bytes = new byte[end];
        buf.get(0, bytes);
        return new String(bytes, StandardCharsets.ISO_8859_1);
    }

    /** The Content-Length of a 200 answer's head; an {@link IOException} for anything else. */
    static long contentLength(String head) throws IOException {
        String[] lines = head.split("\r\n");
        String[] status = lines[0].split(" ", 3);
        if (status.length < 2 || !status[0].startsWith("HTTP/1.")) {
            throw new IOException("not an HTTP/1.x answer: " + lines[0]);
        }
        if (!status[1].equals("200")) {
            throw new IOException("answer " + lines[0]);
        }
        long length = -1;
        for (int i = 1; i < lines.length; i++) {
            int colon = lines[i].indexOf(':');
            if (colon <= 0) {
                continue;
            }
            String name = lines[i].substring(0, colon).trim();
            String value = lines[i].substring(colon + 1).trim();
            if (name.equalsIgnoreCase("Transfer-Encoding")) {
                throw new IOException("answer with Transfer-Encoding: " + value
                        + " (this client reads Content-Length only)");
            }
            if (name.equalsIgnoreCase("Content-Length")) {
                try {
                    length = Long.parseLong(value);
                } catch (NumberFormatException e) {
                    throw new IOException("bad Content-Length: " + value);
                }
            }
        }
        if (length < 0) {
            throw new IOException("answer without Content-Length");
        }
        return length;
    }

    @Override
    public void close() throws IOException {
        try {
            selector.close();
        } finally {
            ch.close();
        }
    }
}
