package io.megallm.proxy.upstream;

import io.netty.handler.codec.http.HttpContent;
import io.netty.handler.codec.http.HttpResponse;

/** What one request hears from the upstream connection it holds. */
public interface UpstreamListener {

    void onResponseHead(HttpResponse head);

    /** Ownership of {@code content} passes to the listener. */
    void onContent(HttpContent content);

    void onReadComplete();

    /** The connection closed or failed; {@code cause} may be null for a plain close. */
    void onUpstreamClosed(Throwable cause);
}
