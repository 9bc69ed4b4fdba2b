package io.megallm.proxy.http;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.util.NetUtil;

import java.net.InetSocketAddress;

/**
 * A client request. Its body is empty while the head is checked ({@link HeadCheck}), then the whole
 * body, read completely: one reference-counted buffer of a few pieces ({@link RequestBody}) owned by
 * the {@link Exchange}; attempts send {@code retainedDuplicate()}s of it.
 */
public final class InboundRequest {

    private final RequestHead head;
    private ByteBuf body;
    /** The body's length as read (or as rewritten), kept after the body itself is let go. */
    private int bodyBytes;
    private final String requestId;
    private final InetSocketAddress remote;
    private final String clientIp;
    private final long startNanos;

    InboundRequest(RequestHead head, ByteBuf body, String requestId, InetSocketAddress remote, String clientIp,
                   long startNanos) {
        this.head = head;
        this.body = body;
        this.requestId = requestId;
        this.remote = remote;
        this.clientIp = clientIp;
        this.startNanos = startNanos;
    }

    /** The address part of a peer as text ("127.0.0.1", "::1": IPv6 in its short form, RFC 5952). */
    static String ipOf(InetSocketAddress a) {
        return a.getAddress() != null ? NetUtil.toAddressString(a.getAddress()) : a.getHostString();
    }

    public HttpMethod method() {
        return head.method();
    }

    public String uri() {
        return head.uri();
    }

    /** The path without the query string. */
    public String path() {
        String uri = head.uri();
        int q = uri.indexOf('?');
        return q < 0 ? uri : uri.substring(0, q);
    }

    public HttpVersion protocolVersion() {
        return head.version();
    }

    public RequestHeaders headers() {
        return head.headers();
    }

    /** A body follows the head (a Content-Length above 0, or chunked), read or not yet. */
    public boolean bodyFollows() {
        return head.chunked() || head.contentLength() > 0;
    }

    public boolean keepAlive() {
        return head.keepAlive();
    }

    public ByteBuf body() {
        return body;
    }

    /** The body, once read whole; the exchange owns it from here. */
    void body(ByteBuf whole) {
        this.body = whole;
        this.bodyBytes = whole.readableBytes();
    }

    /** The body's length in bytes, also once it has been let go ({@link #dropBody}). */
    public int bodyBytes() {
        return bodyBytes;
    }

    /**
     * Replaces the body (DEFAULT_MODEL's rewrite, before any attempt): the old one is released, the
     * new one is owned from now on like the old one was.
     */
    public void replaceBody(ByteBuf rewritten) {
        swapBody(rewritten);
        bodyBytes = rewritten.readableBytes();
    }

    private void swapBody(ByteBuf next) {
        ByteBuf old = body;
        body = next;
        old.release();
    }

    /**
     * Lets go of the body once no attempt can send it again (the answer's head is committed). A
     * stream lasts minutes and its body can be a long conversation, often a slice that pins the
     * whole buffer it was read into; a write still in flight holds its own reference.
     */
    void dropBody() {
        swapBody(Unpooled.EMPTY_BUFFER);
    }

    public String requestId() {
        return requestId;
    }

    public InetSocketAddress remote() {
        return remote;
    }

    /** {@link #remote()}'s address as text, made once per connection; null without a remote. */
    public String clientIp() {
        return clientIp;
    }

    public long startNanos() {
        return startNanos;
    }
}
