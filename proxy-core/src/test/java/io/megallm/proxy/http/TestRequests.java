package io.megallm.proxy.http;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.handler.codec.http.HttpRequest;

import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.Iterator;
import java.util.Map;

/** Builds {@link InboundRequest}s for tests outside this package (the constructor is package-private). */
public final class TestRequests {

    private TestRequests() {
    }

    /**
     * The request as the proxy would read it: {@code head} is written out as HTTP/1.1 bytes and
     * parsed by the proxy's own {@link RequestHeadParser}. The request takes the body as is; the
     * caller keeps responsibility for releasing it.
     */
    public static InboundRequest inbound(HttpRequest head, ByteBuf body, String requestId, InetSocketAddress remote) {
        StringBuilder raw = new StringBuilder();
        raw.append(head.method().name()).append(' ').append(head.uri()).append(' ')
                .append(head.protocolVersion().text()).append("\r\n");
        for (Iterator<Map.Entry<CharSequence, CharSequence>> it = head.headers().iteratorCharSequence(); it.hasNext(); ) {
            Map.Entry<CharSequence, CharSequence> e = it.next();
            raw.append(e.getKey()).append(": ").append(e.getValue()).append("\r\n");
        }
        raw.append("\r\n");
        return new InboundRequest(parse(raw.toString()), body, requestId, remote,
                remote == null ? null : InboundRequest.ipOf(remote), System.nanoTime());
    }

    /** Parses a complete request head given as ISO-8859-1 text. */
    public static RequestHead parse(String raw) {
        ByteBuf bytes = Unpooled.copiedBuffer(raw, StandardCharsets.ISO_8859_1);
        try {
            RequestHead head = new RequestHeadParser().parse(bytes);
            if (head == null) {
                throw new IllegalArgumentException("incomplete head: " + raw);
            }
            return head;
        } catch (BadRequest e) {
            throw new IllegalArgumentException(e.status + " " + e.code + ": " + raw, e);
        } finally {
            bytes.release();
        }
    }
}
