package io.megallm.proxy.http;

import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseEncoder;

/**
 * The client connection's response encoder, for the proxy's own answers. It knows when the answer
 * is to a HEAD request (an answer without a body whatever its headers say). Relayed answers are
 * framed by {@link Exchange} and written from this encoder's context, past it, as bytes.
 */
public final class ResponseEncoder extends HttpResponseEncoder {

    private boolean headRequest;

    /** Set before the head of each answer goes out. */
    void headRequest(boolean headRequest) {
        this.headRequest = headRequest;
    }

    @Override
    protected boolean isContentAlwaysEmpty(HttpResponse msg) {
        return headRequest || super.isContentAlwaysEmpty(msg);
    }
}
