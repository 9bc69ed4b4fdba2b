package io.megallm.proxy.http;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.CompositeByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.codec.ByteToMessageDecoder;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.util.ReferenceCountUtil;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Reads one request at a time from a client connection (auto-read is off): parses the head in
 * place ({@link RequestHeadParser}), checks what must be checked before anything else happens
 * (malformed HTTP, request smuggling, body size), keeps the body as the received buffers and hands
 * the complete request to the {@link RequestRouter}. While an answer is in progress it keeps one
 * read armed, so that a client that hangs up is noticed at once; bytes of a pipelined request wait
 * in the cumulation, unread, until the answer ends.
 */
public final class RequestReader extends ChannelInboundHandlerAdapter {

    private static final Logger log = LoggerFactory.getLogger(RequestReader.class);
    private static final int MAX_REQUEST_ID_LENGTH = 128;

    private final RequestRouter router;
    private final long maxBody;
    private final ServerLifecycle lifecycle;
    private final ExchangeObserver observer;
    private final RequestHeadParser parser = new RequestHeadParser();
    private final ChunkedBodyDecoder chunks = new ChunkedBodyDecoder(RequestHeadParser.MAX_HEADER_SECTION);
    private final ChunkedBodyDecoder.Sink bodySink = this::appendBody;

    private ChannelHandlerContext ctx;
    private ChannelHandlerContext encoder;
    /** Received bytes not yet read: the rest of a head, a body, or pipelined requests. */
    private ByteBuf cumulation;
    private RequestHead head;
    /** The body so far: the first slice itself, a composite once a second one comes. */
    private ByteBuf body;
    /** The connection's peer and its address as text, looked up once per connection. */
    private InetSocketAddress remote;
    private String clientIp;
    private long bodyBytes;
    /** Content-Length bytes still to come; unused for a chunked body. */
    private long bodyRemaining;
    private long startNanos;
    private boolean rejected;
    private boolean processing;
    private Exchange current;

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
        if (rejected || !(msg instanceof ByteBuf bytes)) {
            ReferenceCountUtil.release(msg);
            return;
        }
        cumulation = cumulation == null ? bytes
                : ByteToMessageDecoder.MERGE_CUMULATOR.cumulate(ctx.alloc(), cumulation, bytes);
        if (current == null) {
            process();
        }
    }

    /** Reads requests from the cumulation until one is in progress, or more bytes are needed. */
    private void process() {
        processing = true;
        try {
            while (current == null && !rejected && cumulation != null && cumulation.isReadable()) {
                if (head == null) {
                    RequestHead h = parser.parse(cumulation);
                    if (h == null) {
                        break;
                    }
                    startRequest(h);
                }
                if (!readBody()) {
                    break;
                }
                dispatch();
            }
        } catch (BadRequest e) {
            reject(e.status, e.code, e.getMessage());
        } finally {
            processing = false;
        }
        if (cumulation != null && !cumulation.isReadable()) {
            cumulation.release();
            cumulation = null;
        }
        // Read on while a request is incomplete, and once while an answer runs, to see a hang-up;
        // bytes already waiting behind an answer are enough until it ends.
        if (!rejected && (current == null || cumulation == null)) {
            ctx.read();
        }
    }

    private void startRequest(RequestHead h) throws BadRequest {
        if (h.contentLength() > maxBody) {
            throw tooLarge();
        }
        if (h.expectContinue()) {
            // Answered here, hop by hop: the upstream gets the whole body and no Expect.
            h.headers().remove(HttpHeaderNames.EXPECT);
            ctx.writeAndFlush(new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.CONTINUE,
                    Unpooled.EMPTY_BUFFER));
        }
        head = h;
        bodyBytes = 0;
        bodyRemaining = Math.max(0, h.contentLength());
        startNanos = System.nanoTime();
    }

    /** Moves body bytes out of the cumulation; true once the body is complete. */
    private boolean readBody() throws BadRequest {
        if (head.chunked()) {
            return chunks.decode(cumulation, bodySink);
        }
        int n = (int) Math.min(bodyRemaining, cumulation.readableBytes());
        if (n > 0) {
            appendBody(cumulation.readRetainedSlice(n));
            bodyRemaining -= n;
        }
        return bodyRemaining == 0;
    }

    private void appendBody(ByteBuf part) throws BadRequest {
        bodyBytes += part.readableBytes();
        if (bodyBytes > maxBody) {
            part.release();
            throw tooLarge();
        }
        // No consolidation: the body stays slices of the buffers the socket filled, most often one.
        if (body == null) {
            body = part;
        } else if (body instanceof CompositeByteBuf composite) {
            composite.addComponent(true, part);
        } else {
            CompositeByteBuf composite = ctx.alloc().compositeBuffer(Integer.MAX_VALUE);
            composite.addComponent(true, body);
            composite.addComponent(true, part);
            body = composite;
        }
    }

    private void dispatch() {
        RequestHead request = head;
        ByteBuf content = body != null ? body : Unpooled.EMPTY_BUFFER;
        head = null;
        body = null;
        InetSocketAddress peer = remote();
        Exchange exchange = new Exchange(this, ctx, encoder,
                new InboundRequest(request, content, requestId(request.headers()), peer, clientIp, startNanos));
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
            releasePartial();
            return;
        }
        if (!processing) {
            process();
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
            if (current == null && head == null && cumulation == null) {
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
        Exchange exchange = current;
        if (exchange != null) {
            exchange.clientGone();
        }
        ctx.fireChannelInactive();
    }

    @Override
    public void handlerRemoved(ChannelHandlerContext ctx) {
        releasePartial();
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        log.debug("client connection {} failed: {}", ctx.channel().remoteAddress(), cause.toString());
        ctx.close();
    }

    private BadRequest tooLarge() {
        return new BadRequest(HttpResponseStatus.REQUEST_ENTITY_TOO_LARGE, "request_too_large",
                "The request body is larger than the " + maxBody + " bytes this proxy accepts.");
    }

    /** Answers a request that cannot be read further and closes the connection after the answer. */
    private void reject(HttpResponseStatus status, String code, String message) {
        rejected = true;
        releasePartial();
        FullHttpResponse response = ErrorResponses.error(ctx.alloc(), status,
                ErrorResponses.INVALID_REQUEST, code, message);
        response.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
        ctx.writeAndFlush(response).addListener(ChannelFutureListener.CLOSE);
    }

    private void releasePartial() {
        head = null;
        chunks.reset();
        if (body != null) {
            body.release();
            body = null;
        }
        if (cumulation != null) {
            cumulation.release();
            cumulation = null;
        }
    }

    private InetSocketAddress remote() {
        if (remote == null && ctx.channel().remoteAddress() instanceof InetSocketAddress inet) {
            remote = inet;
            clientIp = InboundRequest.ipOf(inet);
        }
        return remote;
    }

    private static String requestId(RequestHeaders headers) {
        String given = headers.get(Exchange.X_REQUEST_ID);
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
