package io.megallm.proxy.upstream;

import io.netty.buffer.ByteBuf;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpResponse;

/** What one request hears from the upstream connection it holds. */
public interface UpstreamListener {

    /**
     * The final response head. Return true to get a chunked body ({@code chunked}) exactly as
     * received, chunk framing included and the last chunk left out; false for its payload only.
     */
    boolean onResponseHead(HttpResponse head, boolean chunked);

    /** Body bytes; ownership passes to the listener. */
    void onBody(ByteBuf bytes);

    /** The response ended cleanly; {@code trailers} is empty when there were none. */
    void onResponseEnd(HttpHeaders trailers);

    void onReadComplete();

    /** The connection closed or failed before the response ended; {@code cause} may be null for a plain close. */
    void onUpstreamClosed(Throwable cause);
}
