package io.megallm.proxy.http;

import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseEncoder;

/**
 * The client connection's response encoder. It knows when the answer is to a HEAD request (an
 * answer without a body whatever its headers say), and its context is where a chunked body
 * that keeps the upstream's framing is written past it, unchanged.
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
