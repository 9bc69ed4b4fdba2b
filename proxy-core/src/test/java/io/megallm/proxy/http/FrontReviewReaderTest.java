package io.megallm.proxy.http;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.util.ReferenceCountUtil;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Review of the client-facing reader with an embedded channel. */
class FrontReviewReaderTest {

    private final ServerLifecycle lifecycle = new ServerLifecycle();
    private EmbeddedChannel channel;

    @AfterEach
    void close() {
        if (channel != null) {
            channel.finishAndReleaseAll();
        }
    }

    /**
     * §9: a client that stops reading costs bounded memory. Pipelined requests were answered one
     * after the other whatever the connection's writability, so a client that sends requests and
     * reads nothing had every answer queued in the proxy's memory (until SEND_TIMEOUT): a few
     * bytes of request for each answer kept (a /metrics answer holds 64 KiB).
     */
    @Test
    void pipelinedRequestsWaitWhileTheClientReadsNothing() {
        channel = new EmbeddedChannel(new ResponseEncoder(), new RequestReader(exchange -> exchange.respond(
                ErrorResponses.json(exchange.alloc(), HttpResponseStatus.OK, "{\"ok\":true}")), 1024, lifecycle));
        // The client's socket takes no more: what is written waits in the proxy.
        channel.unsafe().outboundBuffer().setUserDefinedWritability(1, false);
        channel.runPendingTasks();
        assertTrue(!channel.isWritable());
        int n = 50;
        StringBuilder requests = new StringBuilder();
        for (int i = 0; i < n; i++) {
            requests.append("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
        }
        channel.writeInbound(Unpooled.copiedBuffer(requests, StandardCharsets.ISO_8859_1));
        channel.runPendingTasks();
        int answered = drain();
        assertTrue(answered <= 1, answered + " of " + n + " pipelined requests answered to a client that reads nothing");

        channel.unsafe().outboundBuffer().setUserDefinedWritability(1, true);
        channel.runPendingTasks();
        assertEquals(n, answered + drain(), "the waiting requests are answered once the client reads again");
    }

    /** Releases what the channel wrote and counts the answers (status lines) in it. */
    private int drain() {
        int answers = 0;
        Object o;
        while ((o = channel.readOutbound()) != null) {
            if (o instanceof ByteBuf b) {
                String s = b.toString(StandardCharsets.ISO_8859_1);
                for (int i = s.indexOf("HTTP/1.1 200"); i >= 0; i = s.indexOf("HTTP/1.1 200", i + 1)) {
                    answers++;
                }
            }
            ReferenceCountUtil.release(o);
        }
        return answers;
    }
}
