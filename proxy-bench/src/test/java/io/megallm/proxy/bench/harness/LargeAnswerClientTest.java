package io.megallm.proxy.bench.harness;

import io.megallm.proxy.bench.MockUpstreamServer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The large-answer scenario's client: what it takes as an answer, and what it refuses. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class LargeAnswerClientTest {

    private static ByteBuffer buffer() {
        return ByteBuffer.allocateDirect(LargeAnswerClient.READ_BUFFER_BYTES);
    }

    @Test
    void readsTheContentLengthOfAnOkAnswerOnly() throws IOException {
        assertEquals(33554432, LargeAnswerClient.contentLength(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nCONTENT-LENGTH:  33554432 \r\nX-Request-Id: a"));
        IOException notFound = assertThrows(IOException.class, () -> LargeAnswerClient.contentLength(
                "HTTP/1.1 404 Not Found\r\nContent-Length: 2"));
        assertTrue(notFound.getMessage().contains("404"), notFound.getMessage());
        IOException chunked = assertThrows(IOException.class, () -> LargeAnswerClient.contentLength(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked"));
        assertTrue(chunked.getMessage().contains("Transfer-Encoding"), chunked.getMessage());
        assertThrows(IOException.class, () -> LargeAnswerClient.contentLength("HTTP/1.1 200 OK\r\nServer: x"));
        assertThrows(IOException.class, () -> LargeAnswerClient.contentLength("HTTP/1.1 200 OK\r\nContent-Length: 1e6"));
        assertThrows(IOException.class, () -> LargeAnswerClient.contentLength("SSH-2.0-OpenSSH_9.2"));
    }

    @Test
    void refusesTheMocksStreamAndItsUnknownPath() throws Exception {
        MockUpstreamServer mock = new MockUpstreamServer(2, 1).start("127.0.0.1", 0, 1);
        try {
            InetSocketAddress addr = new InetSocketAddress("127.0.0.1", mock.port());
            ByteBuffer stream = ascii(Requests.text(mock.port(), Requests.STREAM_BODY, ""));
            try (LargeAnswerClient c = new LargeAnswerClient(addr, stream, buffer(), 10_000)) {
                IOException e = assertThrows(IOException.class, c::exchange);
                assertTrue(e.getMessage().contains("Transfer-Encoding: chunked"), e.getMessage());
            }
            ByteBuffer unknown = ascii(Requests.text(mock.port(), "/v1/nothing", Requests.EMBEDDINGS_BODY, ""));
            try (LargeAnswerClient c = new LargeAnswerClient(addr, unknown, buffer(), 10_000)) {
                IOException e = assertThrows(IOException.class, c::exchange);
                assertTrue(e.getMessage().contains("404"), e.getMessage());
            }
        } finally {
            mock.stop();
        }
    }

    @Test
    void anAnswerCutShortIsAnErrorNotAResult() throws Exception {
        try (ServerSocket server = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            // Promises 100 bytes, sends 10, hangs up once the request has arrived.
            CompletableFuture<Void> peer = CompletableFuture.runAsync(() -> {
                try (Socket s = server.accept()) {
                    // The whole request first: a socket closed with unread bytes resets rather than ends.
                    InputStream in = s.getInputStream();
                    String seen = "";
                    int b;
                    while (!seen.endsWith("\r\n\r\n") && (b = in.read()) >= 0) {
                        seen += (char) b;
                    }
                    OutputStream out = s.getOutputStream();
                    out.write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"
                            .getBytes(StandardCharsets.US_ASCII));
                    out.flush();
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            });
            try (LargeAnswerClient c = new LargeAnswerClient(new InetSocketAddress(InetAddress.getLoopbackAddress(),
                    server.getLocalPort()), ascii("GET / HTTP/1.1\r\n\r\n"), buffer(), 10_000)) {
                assertThrows(EOFException.class, c::exchange);
            }
            peer.get(10, TimeUnit.SECONDS);
        }
    }

    @Test
    void onlyADirectBufferLargeEnoughForAHeadIsTaken() {
        InetSocketAddress nowhere = new InetSocketAddress("127.0.0.1", 9);
        ByteBuffer req = ascii("GET / HTTP/1.1\r\n\r\n");
        assertThrows(IllegalArgumentException.class,
                () -> new LargeAnswerClient(nowhere, req, ByteBuffer.allocate(1 << 20), 1000));
        assertThrows(IllegalArgumentException.class,
                () -> new LargeAnswerClient(nowhere, req, ByteBuffer.allocateDirect(1024), 1000));
    }

    private static ByteBuffer ascii(String s) {
        return ByteBuffer.wrap(s.getBytes(StandardCharsets.US_ASCII));
    }
}
