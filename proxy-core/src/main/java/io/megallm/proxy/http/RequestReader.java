package io.megallm.proxy.http;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.CompositeByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.codec.DecoderResult;
import io.netty.handler.codec.TooLongFrameException;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpContent;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.handler.codec.http.TooLongHttpHeaderException;
import io.netty.handler.codec.http.TooLongHttpLineException;
import io.netty.util.ReferenceCountUtil;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Reads one request at a time from a client connection (auto-read is off), checks what must
 * be checked before anything else happens (decoder errors, request smuggling, body size), keeps
 * the body as a composite of the received buffers and hands the complete request to the
 * {@link RequestRouter}. While an answer is in progress it keeps one read armed, so that a
 * client that hangs up is noticed at once; pipelined requests wait their turn.
 */
public final class RequestReader extends ChannelInboundHandlerAdapter {

    private static final Logger log = LoggerFactory.getLogger(RequestReader.class);
    private static final int MAX_REQUEST_ID_LENGTH = 128;

    private final RequestRouter router;
    private final long maxBody;
    private final ServerLifecycle lifecycle;
    private final ExchangeObserver observer;

    private ChannelHandlerContext ctx;
    private ChannelHandlerContext encoder;
    private HttpRequest head;
    /** The body so far: the first received buffer itself, a composite once a second one comes. */
    private ByteBuf body;
    /** The connection's peer and its address as text, looked up once per connection. */
    private InetSocketAddress remote;
    private String clientIp;
    private long bodyBytes;
    private long startNanos;
    private boolean rejected;
    private Exchange current;
    private ArrayDeque<Object> waiting;

    public RequestReader(RequestRouter router, long maxBody, ServerLifecycle lifecycle) {
        this(router, maxBody, lifecycle, ExchangeObserver.NONE);
    }

    public RequestReader(RequestRouter router, long maxBody, ServerLifecycle lifecycle, ExchangeObserver observer) {
        this.router = router;
        this.maxBody = maxBody;
        this.lifecycle = lifecycle;
        this.observer = observer;
    }

    boolean draining() {
        return lifecycle.draining();
    }

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) {
        this.ctx = ctx;
        this.encoder = ctx.pipeline().context(ResponseEncoder.class);
        if (encoder == null) {
            throw new IllegalStateException("a ResponseEncoder must come before the RequestReader");
        }
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) {
        lifecycle.register(ctx.channel());
        ctx.read();
        ctx.fireChannelActive();
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (rejected) {
            ReferenceCountUtil.release(msg);
            return;
        }
        if (current != null || (waiting != null && !waiting.isEmpty())) {
            // A pipelined request: hold it and stop reading until the current answer ends.
            if (waiting == null) {
                waiting = new ArrayDeque<>(4);
            }
            waiting.add(msg);
            return;
        }
        handle(msg);
    }

    private void handle(Object msg) {
        if (msg instanceof HttpRequest request) {
            if (!startRequest(request)) {
                ReferenceCountUtil.release(msg);
                return;
            }
        }
        if (msg instanceof HttpContent content) {
            if (head == null) {
                content.release();
                return;
            }
            if (!appendContent(content)) {
                return;
            }
            if (content instanceof LastHttpContent) {
                dispatch();
                return;
            }
        }
        ctx.read();
    }

    private boolean startRequest(HttpRequest request) {
        DecoderResult result = request.decoderResult();
        if (result.isFailure()) {
            rejectDecoderFailure(result.cause());
            return false;
        }
        HttpHeaders headers = request.headers();
        if (headers.contains(HttpHeaderNames.CONTENT_LENGTH) && headers.contains(HttpHeaderNames.TRANSFER_ENCODING)) {
            reject(HttpResponseStatus.BAD_REQUEST, "request_smuggling",
                    "A request must not carry both Content-Length and Transfer-Encoding.");
            return false;
        }
        long declared = HttpUtil.getContentLength(request, -1L);
        if (declared > maxBody) {
            rejectTooLarge();
            return false;
        }
        if (HttpUtil.is100ContinueExpected(request)) {
            headers.remove(HttpHeaderNames.EXPECT);
            ctx.writeAndFlush(new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.CONTINUE,
                    Unpooled.EMPTY_BUFFER));
        }
        head = request;
        bodyBytes = 0;
        startNanos = System.nanoTime();
        return true;
    }

    private boolean appendContent(HttpContent content) {
        if (content.decoderResult().isFailure()) {
            content.release();
            rejectDecoderFailure(content.decoderResult().cause());
            return false;
        }
        ByteBuf bytes = content.content();
        int n = bytes.readableBytes();
        if (n == 0) {
            content.release();
            return true;
        }
        bodyBytes += n;
        if (bodyBytes > maxBody) {
            content.release();
            rejectTooLarge();
            return false;
        }
        // No consolidation: the body stays the buffers the socket filled, most often just one.
        if (body == null) {
            body = bytes;
        } else if (body instanceof CompositeByteBuf composite) {
            composite.addComponent(true, bytes);
        } else {
            CompositeByteBuf composite = ctx.alloc().compositeBuffer(Integer.MAX_VALUE);
            composite.addComponent(true, body);
            composite.addComponent(true, bytes);
            body = composite;
        }
        return true;
    }

    private void dispatch() {
        HttpRequest request = head;
        ByteBuf content = body != null ? body : Unpooled.EMPTY_BUFFER;
        head = null;
        body = null;
        InetSocketAddress peer = remote();
        Exchange exchange = new Exchange(this, ctx, encoder,
                new InboundRequest(request, content, requestId(request), peer, clientIp, startNanos));
        current = exchange;
        lifecycle.requestStarted();
        try {
            router.route(exchange);
        } catch (RuntimeException e) {
            log.error("request {} failed inside the proxy", exchange.request().requestId(), e);
            if (!exchange.finished()) {
                if (exchange.headSent()) {
                    exchange.abort();
                } else {
                    exchange.respondError(HttpResponseStatus.INTERNAL_SERVER_ERROR, ErrorResponses.SERVER,
                            "internal_error", "The proxy failed to handle this request.");
                }
            }
        }
        if (current == exchange) {
            // Keep one read armed while the answer runs, so a hang-up is seen at once.
            ctx.read();
        }
    }

    void exchangeDone(Exchange exchange, boolean close) {
        if (current != exchange) {
            return;
        }
        current = null;
        lifecycle.requestEnded();
        try {
            observer.onEnd(exchange);
        } catch (RuntimeException e) {
            log.warn("exchange observer failed", e);
        }
        if (close || !ctx.channel().isActive()) {
            // The close itself follows the last write; nothing more is read from this connection.
            rejected = true;
            releaseWaiting();
            return;
        }
        while (current == null && waiting != null && !waiting.isEmpty() && !rejected) {
            handle(waiting.poll());
        }
        if (current == null && !rejected) {
            ctx.read();
        }
    }

    @Override
    public void channelReadComplete(ChannelHandlerContext ctx) {
        ctx.fireChannelReadComplete();
    }

    @Override
    public void channelWritabilityChanged(ChannelHandlerContext ctx) {
        if (current != null && ctx.channel().isWritable()) {
            current.clientWritable();
        }
        ctx.fireChannelWritabilityChanged();
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
        if (evt == ServerLifecycle.DRAIN) {
            if (current == null && head == null) {
                ctx.close();
            }
            return;
        }
        ctx.fireUserEventTriggered(evt);
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        rejected = true;
        releasePartial();
        releaseWaiting();
        Exchange exchange = current;
        if (exchange != null) {
            exchange.clientGone();
        }
        ctx.fireChannelInactive();
    }

    @Override
    public void handlerRemoved(ChannelHandlerContext ctx) {
        releasePartial();
        releaseWaiting();
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        log.debug("client connection {} failed: {}", ctx.channel().remoteAddress(), cause.toString());
        ctx.close();
    }

    private void rejectDecoderFailure(Throwable cause) {
        if (cause instanceof TooLongHttpHeaderException) {
            reject(HttpResponseStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large",
                    "The request headers are too large.");
        } else if (cause instanceof TooLongHttpLineException) {
            reject(HttpResponseStatus.REQUEST_URI_TOO_LONG, "uri_too_long", "The request line is too long.");
        } else if (cause instanceof RequestSmugglingException) {
            reject(HttpResponseStatus.BAD_REQUEST, "request_smuggling",
                    "A request must not carry both Content-Length and Transfer-Encoding.");
        } else if (cause instanceof TooLongFrameException) {
            reject(HttpResponseStatus.BAD_REQUEST, "bad_request", "A part of the request is too long.");
        } else {
            reject(HttpResponseStatus.BAD_REQUEST, "malformed_http", "The request is not valid HTTP/1.1.");
        }
    }

    private void rejectTooLarge() {
        reject(HttpResponseStatus.REQUEST_ENTITY_TOO_LARGE, "request_too_large",
                "The request body is larger than the " + maxBody + " bytes this proxy accepts.");
    }

    /** Answers a request that cannot be read further and closes the connection after the answer. */
    private void reject(HttpResponseStatus status, String code, String message) {
        rejected = true;
        releasePartial();
        releaseWaiting();
        FullHttpResponse response = ErrorResponses.error(ctx.alloc(), status,
                ErrorResponses.INVALID_REQUEST, code, message);
        response.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
        ctx.writeAndFlush(response).addListener(ChannelFutureListener.CLOSE);
    }

    private void releasePartial() {
        head = null;
        if (body != null) {
            body.release();
            body = null;
        }
    }

    private void releaseWaiting() {
        if (waiting != null) {
            Object m;
            while ((m = waiting.poll()) != null) {
                ReferenceCountUtil.release(m);
            }
        }
    }

    private InetSocketAddress remote() {
        if (remote == null && ctx.channel().remoteAddress() instanceof InetSocketAddress inet) {
            remote = inet;
            clientIp = InboundRequest.ipOf(inet);
        }
        return remote;
    }

    private static String requestId(HttpRequest request) {
        String given = request.headers().get(Exchange.X_REQUEST_ID);
        if (given != null && validId(given)) {
            return given;
        }
        ThreadLocalRandom r = ThreadLocalRandom.current();
        byte[] id = new byte[32];
        hex(r.nextLong(), id, 0);
        hex(r.nextLong(), id, 16);
        return new String(id, StandardCharsets.US_ASCII);
    }

    private static boolean validId(String id) {
        if (id.isEmpty() || id.length() > MAX_REQUEST_ID_LENGTH) {
            return false;
        }
        for (int i = 0; i < id.length(); i++) {
            char c = id.charAt(i);
            if (c <= 0x20 || c >= 0x7f) {
                return false;
            }
        }
        return true;
    }

    /** 16 lowercase hex digits of {@code v} at {@code at}, leading zeros included. */
    private static void hex(long v, byte[] out, int at) {
        for (int i = at + 15; i >= at; i--) {
            out[i] = HeadBytes.HEX[(int) (v & 15)];
            v >>>= 4;
        }
    }
}
