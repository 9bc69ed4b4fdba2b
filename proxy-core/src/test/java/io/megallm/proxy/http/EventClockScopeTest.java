package io.megallm.proxy.http;

import io.megallm.proxy.clock.EventClock;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.http.HttpResponseStatus;
import org.junit.jupiter.api.Test;
import java.nio.charset.StandardCharsets;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The client's reads are one event each for {@link EventClock}: what the router does with a
 * request sees one time, and nothing after the read returns does.
 */
class EventClockScopeTest {

    @Test
    void aRequestIsRoutedWithinItsReadsTimeAndTheTimeEndsWithTheRead() {
        long[] seen = new long[3];
        RequestRouter router = exchange -> {
            seen[0] = EventClock.nanoTime();
            while (System.nanoTime() - seen[0] <= 0) {
                Thread.onSpinWait();
            }
            seen[1] = EventClock.nanoTime();
            seen[2] = exchange.request().startNanos();
            exchange.respond(ErrorResponses.json(exchange.alloc(), HttpResponseStatus.OK, "{}"));
        };
        EmbeddedChannel channel = new EmbeddedChannel();
        channel.pipeline().addLast(new ResponseEncoder(), new RequestReader(router, 1024, new ServerLifecycle(),
                ExchangeObserver.NONE, new ClientLimits(new ClientSettings(1000, 1000, 1000, 1000, 100)),
                HeadCheck.NONE));
        channel.pipeline().fireChannelActive();
        try {
            for (int i = 0; i < 2; i++) {
                long before = System.nanoTime();
                channel.writeInbound(Unpooled.copiedBuffer("GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n",
                        StandardCharsets.ISO_8859_1));
                assertEquals(seen[0], seen[1], "one time for the whole read");
                assertEquals(seen[0], seen[2], "the request starts at its read's time");
                assertTrue(seen[0] - before >= 0, "the time is read when the read begins, not reused from before");
                long after = System.nanoTime();
                assertTrue(EventClock.nanoTime() - after >= 0, "the read's time ends with the read");
                ByteBuf out;
                while ((out = channel.readOutbound()) != null) {
                    out.release();
                }
            }
        } finally {
            channel.finishAndReleaseAll();
        }
    }
}
