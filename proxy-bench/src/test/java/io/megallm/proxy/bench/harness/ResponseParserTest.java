package io.megallm.proxy.bench.harness;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class ResponseParserTest {

    /** Records what the parser reports, as text. */
    static final class Log implements ResponseParser.Listener, SseScanner.Sink {
        final List<String> events = new ArrayList<>();
        final StringBuilder body = new StringBuilder();
        final SseScanner scanner = new SseScanner();
        final List<Long> sent = new ArrayList<>();

        @Override
        public void onHead(int status) {
            events.add("head " + status);
        }

        @Override
        public void onBody(ByteBuf buf, int index, int length) {
            body.append(buf.toString(index, length, StandardCharsets.UTF_8));
            scanner.scan(buf, index, length, this);
        }

        @Override
        public void onComplete() {
            events.add("complete " + body.length());
            body.setLength(0);
        }

        @Override
        public void onEvent(long sentNanos) {
            sent.add(sentNanos);
        }
    }

    static final String FIXED = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\nhello";
    static final String E1 = "data: {\"sent_ns\":1234567}\n\n";
    static final String E2 = "data: {\"a\":1,\"sent_ns\":42}\n\n";
    static final String E3 = "data: [DONE]\n\n";
    static final String CHUNKED = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nTRANSFER-ENCODING: chunked\r\n\r\n"
            + chunk(E1) + chunk(E2) + chunk(E3) + "0\r\n\r\n";

    static String chunk(String s) {
        return Integer.toHexString(s.length()) + "\r\n" + s + "\r\n";
    }

    /** Feeds the bytes split at every possible point into two pieces, and one byte at a time. */
    private static void everySplit(String text, java.util.function.Consumer<Log> check) {
        byte[] bytes = text.getBytes(StandardCharsets.US_ASCII);
        for (int cut = 0; cut <= bytes.length; cut++) {
            Log log = new Log();
            ResponseParser p = new ResponseParser(ByteBufAllocator.DEFAULT, log);
            feed(p, bytes, 0, cut);
            feed(p, bytes, cut, bytes.length);
            p.release();
            check.accept(log);
        }
        Log log = new Log();
        ResponseParser p = new ResponseParser(ByteBufAllocator.DEFAULT, log);
        for (int i = 0; i < bytes.length; i++) {
            feed(p, bytes, i, i + 1);
        }
        p.release();
        check.accept(log);
    }

    private static void feed(ResponseParser p, byte[] bytes, int from, int to) {
        ByteBuf b = Unpooled.wrappedBuffer(bytes, from, to - from);
        try {
            p.feed(b);
        } finally {
            b.release();
        }
    }

    @Test
    void contentLengthBodiesAcrossAnySplit() {
        everySplit(FIXED + FIXED, log -> assertEquals(List.of("head 200", "complete 5", "head 200", "complete 5"),
                log.events));
    }

    @Test
    void chunkedBodiesAndSseSendTimesAcrossAnySplit() {
        everySplit(CHUNKED, log -> {
            assertEquals(List.of("head 200", "complete " + (E1 + E2 + E3).length()), log.events);
            assertEquals(List.of(1234567L, 42L), log.sent);
        });
    }

    @Test
    void interimAnswersAreSkippedAndStatusIsKept() {
        everySplit("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\nno",
                log -> assertEquals(List.of("head 503", "complete 2"), log.events));
    }

    @Test
    void chunkExtensionsAndTrailersAreAccepted() {
        everySplit("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: y\r\n\r\n",
                log -> assertEquals(List.of("head 200", "complete 3"), log.events));
    }

    @Test
    void responsesWithoutFramingAreRefused() {
        ResponseParser p = new ResponseParser(ByteBufAllocator.DEFAULT, new Log());
        ByteBuf b = Unpooled.copiedBuffer("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabc", StandardCharsets.US_ASCII);
        try {
            assertThrows(ResponseParser.ParseException.class, () -> p.feed(b));
        } finally {
            b.release();
            p.release();
        }
    }
}
