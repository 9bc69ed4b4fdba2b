package io.megallm.proxy.bench.harness;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/** The requests the load client sends, encoded once (clients write duplicates of them). */
public final class Requests {

    public static final String CHAT_BODY =
            "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"system\",\"content\":\"You are a helpful assistant.\"},"
                    + "{\"role\":\"user\",\"content\":\"Hello! Please answer in one short sentence.\"}]}";

    public static final String STREAM_BODY =
            "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":[{\"role\":\"system\",\"content\":"
                    + "\"You are a helpful assistant.\"},{\"role\":\"user\",\"content\":\"Hello! Please stream.\"}]}";

    /** A batch-embeddings call as the SDK sends it; the mock's answer size comes from a header. */
    public static final String EMBEDDINGS_BODY = "{\"model\":\"text-embedding-3-small\",\"input\":\"hi\"}";

    private Requests() {
    }

    /** A non-streaming chat completion as an OpenAI SDK would send it (keep-alive). */
    public static ByteBuf nonStream(int port) {
        return encode(port, CHAT_BODY, "");
    }

    /** A streaming chat completion; the X-Mock-* headers tell the mock how to stream. */
    public static ByteBuf stream(int port, int events, long intervalMs, int pad) {
        return encode(port, STREAM_BODY, "X-Mock-Events: " + events + "\r\nX-Mock-Interval-Ms: " + intervalMs
                + "\r\n" + (pad > 0 ? "X-Mock-Pad: " + pad + "\r\n" : "") + "Accept: text/event-stream\r\n");
    }

    /**
     * {@code POST /v1/embeddings} whose answer the mock makes {@code answerBytes} long, for a
     * blocking client: a read-only JDK buffer (no reference count) that each send duplicates.
     */
    public static ByteBuffer embeddings(int port, long answerBytes) {
        byte[] bytes = text(port, "/v1/embeddings", EMBEDDINGS_BODY, "X-Mock-Answer-Bytes: " + answerBytes + "\r\n")
                .getBytes(StandardCharsets.UTF_8);
        return ByteBuffer.allocateDirect(bytes.length).put(bytes).flip().asReadOnlyBuffer();
    }

    public static String text(int port, String body, String extraHeaders) {
        return text(port, "/v1/chat/completions", body, extraHeaders);
    }

    public static String text(int port, String path, String body, String extraHeaders) {
        byte[] b = body.getBytes(StandardCharsets.UTF_8);
        return "POST " + path + " HTTP/1.1\r\n"
                + "Host: 127.0.0.1:" + port + "\r\n"
                + "User-Agent: megallm-bench/1.0\r\n"
                + "Accept: application/json\r\n"
                + "Content-Type: application/json\r\n"
                + "Authorization: Bearer sk-bench-client-key\r\n"
                + "X-Stainless-Lang: java\r\n"
                + "X-Stainless-Retry-Count: 0\r\n"
                + extraHeaders
                + "Content-Length: " + b.length + "\r\n"
                + "\r\n"
                + body;
    }

    private static ByteBuf encode(int port, String body, String extraHeaders) {
        byte[] bytes = text(port, body, extraHeaders).getBytes(StandardCharsets.UTF_8);
        // A JDK direct buffer, wrapped: no reference count to keep, and nothing for the leak detector to track.
        java.nio.ByteBuffer direct = java.nio.ByteBuffer.allocateDirect(bytes.length).put(bytes).flip();
        return Unpooled.unreleasableBuffer(Unpooled.wrappedBuffer(direct).asReadOnly());
    }

    /** A plain GET, for the mock's statistics. */
    public static String get(int port, String path) {
        return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + port + "\r\nConnection: close\r\n\r\n";
    }
}
