package io.megallm.proxy.http;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.http.HttpResponseStatus;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Which client timeout runs when, and what the client then sees, on an embedded channel with
 * frozen time (each timeout 1 s). The same rules over real sockets: ClientLimitsTest in proxy-server.
 */
class RequestReaderTimeoutsTest {

    private final ServerLifecycle lifecycle = new ServerLifecycle();
    private final AtomicInteger routed = new AtomicInteger();
    private ClientLimits limits;
    private EmbeddedChannel channel;

    @BeforeEach
    void open() {
        open(exchange -> {
            routed.incrementAndGet();
            exchange.respond(ErrorResponses.json(exchange.alloc(), HttpResponseStatus.OK, "{}"));
        });
    }

    private void open(RequestRouter router) {
        if (channel != null) {
            channel.finishAndReleaseAll();
        }
        limits = new ClientLimits(new ClientSettings(1000, 1000, 1000, 1000, 100));
        channel = new EmbeddedChannel();
        channel.freezeTime();
        channel.pipeline().addLast(new ResponseEncoder(),
                new RequestReader(router, 1024, lifecycle, ExchangeObserver.NONE, limits, HeadCheck.NONE));
        channel.pipeline().fireChannelActive();
    }

    @AfterEach
    void close() {
        channel.finishAndReleaseAll();
    }

    private void write(String raw) {
        channel.writeInbound(Unpooled.copiedBuffer(raw, StandardCharsets.ISO_8859_1));
        channel.runPendingTasks();
    }

    private void advanceMillis(long ms) {
        channel.advanceTimeBy(ms, TimeUnit.MILLISECONDS);
        channel.runScheduledPendingTasks();
        channel.runPendingTasks();
    }

    private String written() {
        StringBuilder out = new StringBuilder();
        ByteBuf b;
        while ((b = channel.readOutbound()) != null) {
            out.append(b.toString(StandardCharsets.ISO_8859_1));
            b.release();
        }
        return out.toString();
    }

    @Test
    void theWholeHeadHasOneDeadlineFromTheAcceptWhateverTrickles() {
        advanceMillis(400);
        write("POST /v1/x HTTP/1.1\r\n");
        advanceMillis(400);
        write("Host: p\r\n");
        advanceMillis(199);
        assertTrue(channel.isOpen());
        assertEquals("", written());

        advanceMillis(1);
        String out = written();
        assertTrue(out.startsWith("HTTP/1.1 408 "), out);
        assertTrue(out.contains("\"code\":\"request_timeout\""), out);
        assertFalse(channel.isOpen());
        assertEquals(0, routed.get());
    }

    @Test
    void aNewConnectionThatSendsNothingIsClosedWithoutAnAnswer() {
        advanceMillis(1000);
        assertEquals("", written());
        assertFalse(channel.isOpen());
    }

    @Test
    void theBodyTimeoutIsSilenceBetweenReadsNotTheWholeBody() {
        write("POST /v1/x HTTP/1.1\r\nHost: p\r\nContent-Length: 4\r\n\r\n");
        for (int i = 0; i < 3; i++) {
            advanceMillis(900);
            write("x");
        }
        assertTrue(channel.isOpen(), "2.7 s of body, never 1 s of silence");
        assertEquals("", written());

        advanceMillis(1000);
        String out = written();
        assertTrue(out.startsWith("HTTP/1.1 408 "), out);
        assertFalse(channel.isOpen());
        assertEquals(0, routed.get());
    }

    @Test
    void anIdleKeepAliveConnectionIsClosedSilentlyAndAnotherRequestRestartsNothing() {
        write("GET /health HTTP/1.1\r\nHost: p\r\n\r\n");
        assertTrue(written().startsWith("HTTP/1.1 200 "));
        advanceMillis(999);
        assertTrue(channel.isOpen());

        advanceMillis(1);
        assertEquals("", written());
        assertFalse(channel.isOpen());
        assertEquals(1, routed.get());
    }

    @Test
    void noClientTimeoutRunsWhileTheAnswerIsOnItsWay() {
        // A router that never answers: the upstream's timeouts apply then, not the client's.
        open(exchange -> { });
        write("GET /v1/models HTTP/1.1\r\nHost: p\r\n\r\n");
        advanceMillis(10_000);
        assertTrue(channel.isOpen());
        assertEquals("", written());
    }

    @Test
    void theConnectionCountFollowsOpensAndCloses() {
        assertEquals(1, limits.openConnections());
        channel.close();
        channel.runPendingTasks();
        assertEquals(0, limits.openConnections());
    }
}
