package io.megallm.proxy.http;

import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpVersion;

/** A parsed request line and header section, with what they say about the body and the connection. */
public final class RequestHead {

    private final HttpMethod method;
    private final String uri;
    private final HttpVersion version;
    private final RequestHeaders headers;
    private final boolean keepAlive;
    private final long contentLength;
    private final boolean chunked;
    private final boolean expectContinue;

    RequestHead(HttpMethod method, String uri, HttpVersion version, RequestHeaders headers, boolean keepAlive,
                long contentLength, boolean chunked, boolean expectContinue) {
        this.method = method;
        this.uri = uri;
        this.version = version;
        this.headers = headers;
        this.keepAlive = keepAlive;
        this.contentLength = contentLength;
        this.chunked = chunked;
        this.expectContinue = expectContinue;
    }

    public HttpMethod method() {
        return method;
    }

    public String uri() {
        return uri;
    }

    public HttpVersion version() {
        return version;
    }

    public RequestHeaders headers() {
        return headers;
    }

    /** HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with "Connection: keep-alive". */
    public boolean keepAlive() {
        return keepAlive;
    }

    /** The declared body length, or -1 when there is no Content-Length. */
    public long contentLength() {
        return contentLength;
    }

    /** The body comes in chunked transfer coding. */
    public boolean chunked() {
        return chunked;
    }

    /** The client waits for "100 Continue" before it sends the body. */
    public boolean expectContinue() {
        return expectContinue;
    }
}
