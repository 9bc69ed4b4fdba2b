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

    /**
     * Stands for a request refused before its head could be read whole: the request line's method
     * and target if it was read (null: "-"), no header fields.
     */
    static RequestHead unread(HttpMethod method, String uri) {
        return new RequestHead(method != null ? method : UNREAD_METHOD, uri != null ? uri : "-", HttpVersion.HTTP_1_1,
                new RequestHeaders(new byte[0], new int[0], 0), false, -1, false, false);
    }

    private static final HttpMethod UNREAD_METHOD = new HttpMethod("-");

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
