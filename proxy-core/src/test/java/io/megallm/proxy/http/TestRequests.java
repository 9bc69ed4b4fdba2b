package io.megallm.proxy.http;

import io.netty.buffer.ByteBuf;
import io.netty.handler.codec.http.HttpRequest;

import java.net.InetSocketAddress;

/** Builds {@link InboundRequest}s for tests outside this package (the constructor is package-private). */
public final class TestRequests {

    private TestRequests() {
    }

    /** The request takes the body as is; the caller keeps responsibility for releasing it. */
    public static InboundRequest inbound(HttpRequest head, ByteBuf body, String requestId, InetSocketAddress remote) {
        return new InboundRequest(head, body, requestId, remote, remote == null ? null : InboundRequest.ipOf(remote),
                System.nanoTime());
    }
}
