package io.megallm.proxy.http;

import io.megallm.proxy.clock.EventClock;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelOption;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.socket.DuplexChannel;
import io.netty.handler.codec.ByteToMessageDecoder;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpMethod;
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
 * (malformed HTTP, request smuggling, body size), lets the {@link HeadCheck} refuse the request
 * before its body is read, gathers the body ({@link RequestBody}) and hands the complete request to
 * the {@link RequestRouter}. While an answer is in progress it keeps one read armed, so that a
 * client that hangs up is noticed at once; bytes of a pipelined request wait in the cumulation,
 * unread, until the answer ends. It also enforces the client timeouts and the connection cap
 * ({@link ClientLimits}): which timer runs follows from what the connection is waiting for.
 */
public final class RequestReader extends ChannelInboundHandlerAdapter {

    private static final Logger log = LoggerFactory.getLogger(RequestReader.class);
    private static final int MAX_REQUEST_ID_LENGTH = 128;

    // What the connection waits for, and so which timeout runs.
    /** An answer, or nothing more (closing): no client timeout but the send one. */
    private static final int BUSY = 0;
    /** The first byte on a new connection (CLIENT_HEADER_TIMEOUT; silence is closed silently). */
    private static final int FIRST = 1;
    /** The next request on a keep-alive connection (KEEPALIVE_TIMEOUT, closed silently). */
    private static final int IDLE = 2;
    /** The rest of a request head (CLIENT_HEADER_TIMEOUT from its first byte, then 408). */
    private static final int HEAD = 3;
    /** More of a request body (CLIENT_BODY_TIMEOUT of silence, then 408). */
    private static final int BODY = 4;

    private final RequestRouter router;
    private final long maxBody;
    private final ServerLifecycle lifecycle;
    private final ExchangeObserver observer;
    private final ClientLimits limits;
    private final HeadCheck headCheck;
    private final RequestHeadParser parser = new RequestHeadParser();
    private final ChunkedBodyDecoder chunks = new ChunkedBodyDecoder(RequestHeadParser.MAX_HEADER_SECTION);
    private final ChunkedBodyDecoder.Sink bodySink = this::appendChunk;
    private final ConnectionWatch.Entry phaseTimer = new ConnectionWatch.Entry(this::phaseExpired);
    private final ConnectionWatch.Entry sendTimer = new ConnectionWatch.Entry(this::sendExpired);

    private ChannelHandlerContext ctx;
    private ChannelHandlerContext encoder;
    /** Received bytes not yet read: the rest of a head, a body, or pipelined requests. */
    private ByteBuf cumulation;
    private RequestHead head;
    /** The request whose head was admitted and whose body is being read. */
    private Exchange next;
    private RequestBody body;
    private ConnectionWatch watch;
    private int phase = BUSY;
    private long lastReadNanos;
    /** Bytes the client still had to accept when the send timer was armed. */
    private long unsentAtArm;
    private boolean counted;
    /** Refused over the cap: the 503 is out, reads are discarded until the client closes. */
    private boolean lingering;
    /**
     * {@code current}, or the request whose body is being read, was counted in flight by the
     * lifecycle (an answer from the head check is not).
     */
    private boolean inFlight;
    private boolean servedOne;
    /** The connection's peer and its address as text, looked up once per connection. */
    private InetSocketAddress remote;
    private String clientIp;
    /** Content-Length bytes still to come; unused for a chunked body. */
    private long bodyRemaining;
    private long startNanos;
    private boolean rejected;
    /** When the head being read began: the accept, or the first byte after an idle wait. */
    private long headSinceNanos;
    private boolean processing;
    private Exchange current;

    public RequestReader(RequestRouter router, long maxBody, ServerLifecycle lifecycle) {
        this(router, maxBody, lifecycle, ExchangeObserver.NONE);
    }

    public RequestReader(RequestRouter router, long maxBody, ServerLifecycle lifecycle, ExchangeObserver observer) {
        this(router, maxBody, lifecycle, observer, ClientLimits.unlimited(), HeadCheck.NONE);
    }

    public RequestReader(RequestRouter router, long maxBody, ServerLifecycle lifecycle, ExchangeObserver observer,
                         ClientLimits limits, HeadCheck headCheck) {
        this.router = router;
        this.maxBody = maxBody;
        this.lifecycle = lifecycle;
        this.observer = observer;
        this.limits = limits;
        this.headCheck = headCheck;
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
        body = new RequestBody(ctx.alloc(), maxBody);
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) {
        lifecycle.register(ctx.channel());
        watch = limits.watch(ctx.channel().eventLoop());
        counted = true;
        if (!limits.opened()) {
            refuseOverCap();
        } else {
            enter(FIRST);
            ctx.read();
        }
        ctx.fireChannelActive();
    }

    /**
     * One connection over MAX_CONNECTIONS: 503 at once, then a lingering close (our side shut, the
     * client's bytes read and dropped until it closes or the header timeout ends it), so that its
     * request arriving after our close cannot reset the connection before the 503 is read.
     */
    private void refuseOverCap() {
        rejected = true;
        FullHttpResponse response = ErrorResponses.error(ctx.alloc(), HttpResponseStatus.SERVICE_UNAVAILABLE,
                ErrorResponses.UNAVAILABLE, "too_many_connections",
                "The proxy has as many client connections open as it accepts; try again later.");
        response.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
        Exchange refused = unread(false, null, null);
        response.headers().set(Exchange.X_REQUEST_ID, refused.request().requestId());
        report(refused, response);
        ctx.writeAndFlush(response).addListener(lingerAfter());
    }

    /**
     * After an answer that leaves the client's bytes unread (a refusal over the cap, or an answer
     * before the body: 413, 401, a limit's 429): a lingering close, as Nginx's. Our side is shut
     * (the client reads the answer, then a clean end), and what the client still sends is read
     * and dropped until it closes, for 10 s at most. A plain close would make the
     * kernel answer the client's next bytes with a reset, which may discard our answer before the
     * client has read it: an SDK uploading a large body saw a connection error instead of its 413.
     */
    ChannelFutureListener lingerAfter() {
        return f -> {
            Channel ch = f.channel();
            if (f.isSuccess() && ch.isActive() && ch instanceof DuplexChannel duplex && watch != null) {
                rejected = true;
                lingering = true;
                releasePartial();
                duplex.shutdownOutput();
                // Long enough for the client to read the answer; short, so that a slow client
                // answered 408 (or one that sends without end) is not held much longer.
                watch.arm(phaseTimer, ConnectionWatch.HEAD, Math.min(limits.settings().headerNanos(), LINGER_NANOS));
                ch.read();
            } else {
                ch.close();
            }
        };
    }

    /** At most this long a lingering close reads and drops what the client still sends (Nginx: lingering_time). */
    static final long LINGER_NANOS = java.util.concurrent.TimeUnit.SECONDS.toNanos(10);

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (rejected || !(msg instanceof ByteBuf bytes)) {
            ReferenceCountUtil.release(msg);
            if (lingering) {
                ctx.read();
            }
            return;
        }
        EventClock.enter();
        try {
            if (phase == BODY) {
                lastReadNanos = watch.now();
            }
            cumulation = cumulation == null ? bytes
                    : ByteToMessageDecoder.MERGE_CUMULATOR.cumulate(ctx.alloc(), cumulation, bytes);
            if (current == null) {
                process();
            }
        } finally {
            EventClock.exit();
        }
    }

    /** Reads requests from the cumulation until one is in progress, or more bytes are needed. */
    private void process() {
        processing = true;
        boolean paused = false;
        try {
            while (current == null && !rejected && cumulation != null && cumulation.isReadable()) {
                if (head == null && !ctx.channel().isWritable()) {
                    // The client has not taken the last answer: the next request waits (it and
                    // what follows it unread) until it does, so that a client that reads nothing
                    // cannot have answer after answer queued here. SEND_TIMEOUT runs meanwhile.
                    paused = true;
                    break;
                }
                if (head == null) {
                    RequestHead h = parser.parse(cumulation);
                    if (h == null) {
                        break;
                    }
                    if (!startRequest(h)) {
                        continue;
                    }
                }
                if (!readBody()) {
                    break;
                }
                dispatch();
            }
        } catch (BadRequest e) {
            reject(e.status, e.code, e.getMessage(), e.method, e.uri);
        } finally {
            processing = false;
        }
        if (cumulation != null && !cumulation.isReadable()) {
            cumulation.release();
            cumulation = null;
        }
        if (!rejected) {
            enter(current != null || paused ? BUSY : head != null ? BODY : cumulation != null ? HEAD : servedOne ? IDLE : FIRST);
        }
        // Read on while a request is incomplete, and once while an answer runs, to see a hang-up;
        // bytes already waiting behind an answer are enough until it ends.
        if (!rejected && !paused && (current == null || cumulation == null)) {
            ctx.read();
        }
    }

    /**
     * A head is read: checks what can be checked before the body. False when the request was
     * answered here (by the head check), so its body is not to be read.
     */
    private boolean startRequest(RequestHead h) throws BadRequest {
        startNanos = EventClock.nanoTime();
        Exchange exchange = new Exchange(this, ctx, encoder, new InboundRequest(h, Unpooled.EMPTY_BUFFER,
                requestId(h.headers()), remote(), clientIp, startNanos));
        if (h.contentLength() > maxBody) {
            next = exchange; // for the refusal's access line and metrics
            throw tooLarge();
        }
        servedOne = true;
        boolean bodyFollows = h.chunked() || h.contentLength() > 0;
        // An answer now leaves the body unread: the connection cannot be reused after it.
        exchange.closeAfterAnswer(bodyFollows);
        current = exchange;
        if (!admit(exchange)) {
            return false;
        }
        current = null;
        exchange.closeAfterAnswer(false);
        if (h.expectContinue()) {
            // Answered here, hop by hop: the upstream gets the whole body and no Expect.
            h.headers().remove(HttpHeaderNames.EXPECT);
            ctx.writeAndFlush(new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.CONTINUE,
                    Unpooled.EMPTY_BUFFER));
        }
        head = h;
        next = exchange;
        bodyRemaining = Math.max(0, h.contentLength());
        if (bodyFollows) {
            // In flight from here: a drain lets an upload in progress finish (contract §10).
            inFlight = true;
            lifecycle.requestStarted();
        }
        return true;
    }

    private boolean admit(Exchange exchange) {
        try {
            if (headCheck.admit(exchange)) {
                exchange.admittedOnHead(headCheck != HeadCheck.NONE);
                return true;
            }
            if (exchange.finished()) {
                return false;
            }
            log.error("request {}: the head check refused it without an answer", exchange.request().requestId());
        } catch (RuntimeException e) {
            log.error("request {}: the head check failed", exchange.request().requestId(), e);
        }
        if (!exchange.finished()) {
            exchange.respondError(HttpResponseStatus.INTERNAL_SERVER_ERROR, ErrorResponses.SERVER,
                    "internal_error", "The proxy failed to handle this request.");
        }
        return false;
    }

    /** Moves body bytes out of the cumulation; true once the body is complete. */
    private boolean readBody() throws BadRequest {
        if (head.chunked()) {
            return chunks.decode(cumulation, bodySink);
        }
        // A Content-Length within the limit was checked with the head.
        int n = (int) Math.min(bodyRemaining, cumulation.readableBytes());
        if (n > 0) {
            body.append(cumulation, n);
            bodyRemaining -= n;
        }
        return bodyRemaining == 0;
    }

    private void appendChunk(ByteBuf in, int length) throws BadRequest {
        if (body.bytes() + length > maxBody) {
            throw tooLarge();
        }
        body.append(in, length);
    }

    private void dispatch() {
        Exchange exchange = next;
        next = null;
        head = null;
        exchange.request().body(body.take());
        current = exchange;
        if (!inFlight) {
            inFlight = true;
            lifecycle.requestStarted();
        }
        enter(BUSY);
        try {
            router.route(exchange);
        } catch (RuntimeException | OutOfMemoryError e) {
            // An answer too large for the heap (a /metrics of a huge client file) fails this
            // request alone: what it allocated is garbage now, and the 500 is small.
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
        if (inFlight) {
            inFlight = false;
            lifecycle.requestEnded();
        }
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
        if (lifecycle.draining() && (cumulation == null || !cumulation.isReadable())) {
            // The answer's head went out before the drain, without Connection: close: the
            // connection is an idle keep-alive one now, and those close at SIGTERM (README). A
            // request already pipelined behind it is served, and its answer says close.
            rejected = true;
            releasePartial();
            // After the answer's last bytes, past the encoder as the exchange wrote them.
            encoder.writeAndFlush(Unpooled.EMPTY_BUFFER).addListener(ChannelFutureListener.CLOSE);
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
        Channel ch = ctx.channel();
        if (ch.isWritable()) {
            if (watch != null) {
                watch.disarm(sendTimer);
            }
            if (current != null) {
                current.clientWritable();
            } else if (!rejected && !processing && cumulation != null) {
                // Requests that waited for the client to take an answer (process()).
                process();
            }
        } else if (watch != null) {
            unsentAtArm = ch.bytesBeforeWritable();
            watch.arm(sendTimer, ConnectionWatch.SEND, limits.settings().sendNanos());
        }
        ctx.fireChannelWritabilityChanged();
    }

    /** Starts the timer of what the connection now waits for; a head's timer runs on from its first byte. */
    private void enter(int waitingFor) {
        if (waitingFor == phase || watch == null) {
            return;
        }
        int was = phase;
        phase = waitingFor;
        ClientSettings s = limits.settings();
        switch (waitingFor) {
            case FIRST -> {
                headSinceNanos = EventClock.nanoTime();
                watch.arm(phaseTimer, ConnectionWatch.HEAD, s.headerNanos());
            }
            case IDLE -> watch.arm(phaseTimer, ConnectionWatch.IDLE, s.keepAliveNanos());
            case HEAD -> {
                // On a new connection the head's time counts from the accept, as Nginx's does.
                if (was != FIRST) {
                    headSinceNanos = EventClock.nanoTime();
                    watch.arm(phaseTimer, ConnectionWatch.HEAD, s.headerNanos());
                }
            }
            case BODY -> {
                lastReadNanos = watch.now();
                watch.arm(phaseTimer, ConnectionWatch.BODY, s.bodyNanos());
            }
            default -> watch.disarm(phaseTimer);
        }
    }

    private void phaseExpired() {
        if (lingering || !ctx.channel().isActive()) {
            ctx.close();
            return;
        }
        switch (phase) {
            case HEAD -> timedOut("The request head did not arrive within CLIENT_HEADER_TIMEOUT.");
            case BODY -> {
                // Reads only note their time; the timer is set again for what is left of the silence.
                long silent = watch.now() - lastReadNanos;
                long allowed = limits.settings().bodyNanos();
                if (silent < allowed) {
                    watch.arm(phaseTimer, ConnectionWatch.BODY, allowed - silent);
                } else {
                    timedOut("The request body stopped arriving for longer than CLIENT_BODY_TIMEOUT.");
                }
            }
            case FIRST, IDLE -> {
                // Nothing of a request was sent: no one to answer, as Nginx does.
                phase = BUSY;
                rejected = true;
                releasePartial();
                ctx.close();
            }
            default -> {
            }
        }
    }

    private void timedOut(String message) {
        log.debug("client {}: {}", ctx.channel().remoteAddress(), message);
        reject(HttpResponseStatus.REQUEST_TIMEOUT, "request_timeout", message, null, null);
    }

    /**
     * The client accepted no byte for SEND_TIMEOUT while an answer waited for it: the connection is
     * cut, and closing it ends the exchange, whose relay closes its upstream connection at once.
     */
    private void sendExpired() {
        Channel ch = ctx.channel();
        if (!ch.isActive() || ch.isWritable()) {
            return;
        }
        long unsent = ch.bytesBeforeWritable();
        if (unsent < unsentAtArm) {
            // The client took some bytes: it is slow, not gone.
            unsentAtArm = unsent;
            watch.arm(sendTimer, ConnectionWatch.SEND, limits.settings().sendNanos());
            return;
        }
        log.debug("client {}: accepted nothing for SEND_TIMEOUT, closing", ch.remoteAddress());
        try {
            // A reset, not a FIN behind the unsent bytes: the kernel frees them now instead of
            // keeping them for a client that does not read (Nginx's reset_timedout_connection).
            ch.config().setOption(ChannelOption.SO_LINGER, 0);
        } catch (RuntimeException e) {
            // Not a TCP socket (tests with an embedded channel): the plain close below does.
        }
        ctx.close();
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
        if (evt == ServerLifecycle.DRAIN) {
            if (current == null && head == null && cumulation == null && !lingering) {
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
        forget();
        Exchange exchange = current;
        if (exchange != null) {
            exchange.clientGone(lifecycle.cutting());
        }
        ctx.fireChannelInactive();
    }

    @Override
    public void handlerRemoved(ChannelHandlerContext ctx) {
        releasePartial();
        forget();
    }

    /** Stops this connection's timers and counts it out, once. */
    private void forget() {
        if (watch != null) {
            watch.disarm(phaseTimer);
            watch.disarm(sendTimer);
        }
        if (counted) {
            counted = false;
            limits.closed();
        }
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        if (cause instanceof java.io.IOException) {
            // A client's reset or broken pipe: routine at the edge, not worth a line each.
            log.debug("client connection {} failed: {}", ctx.channel().remoteAddress(), cause.toString());
        } else {
            // Anything else is ours (a bug, or the heap running out while answering): it ended
            // this connection, so it is said, with its trace, at most once a second.
            long now = System.nanoTime();
            long last = lastInternalError;
            if (last == 0 || now - last >= 1_000_000_000L) {
                lastInternalError = now;
                log.error("a request on {} failed inside the proxy; its connection is closed", remote, cause);
            }
        }
        ctx.close();
    }

    /** When an internal failure was last logged (nanoTime, 0 never), shared by every connection. */
    private static volatile long lastInternalError;

    private BadRequest tooLarge() {
        return new BadRequest(HttpResponseStatus.REQUEST_ENTITY_TOO_LARGE, "request_too_large",
                "The request body is larger than the " + maxBody + " bytes this proxy accepts.");
    }

    /**
     * Answers a request that cannot be read further and closes the connection after the answer.
     * {@code method} and {@code uri}: the request line, when it was read but the head was not.
     */
    private void reject(HttpResponseStatus status, String code, String message, HttpMethod method, String uri) {
        Exchange refused = next != null ? next : unread(phase == FIRST || phase == HEAD, method, uri);
        rejected = true;
        enter(BUSY);
        releasePartial();
        FullHttpResponse response = ErrorResponses.error(ctx.alloc(), status,
                ErrorResponses.INVALID_REQUEST, code, message);
        response.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
        response.headers().set(Exchange.X_REQUEST_ID, refused.request().requestId());
        report(refused, response);
        ctx.writeAndFlush(response).addListener(lingerAfter());
    }

    /**
     * A request refused before its head was read whole: no header fields, a request id of its
     * own, timed from when its head began ({@code fromHead}) or from now.
     */
    private Exchange unread(boolean fromHead, HttpMethod method, String uri) {
        RequestHead h = RequestHead.unread(method, uri);
        long since = fromHead && headSinceNanos != 0 ? headSinceNanos : EventClock.nanoTime();
        return new Exchange(this, ctx, encoder, new InboundRequest(h, Unpooled.EMPTY_BUFFER, requestId(h.headers()),
                remote(), clientIp, since));
    }

    /** Tells the observer of a refusal the reader answered itself, as of any other request. */
    private void report(Exchange refused, FullHttpResponse answer) {
        refused.refused(answer.status().code(), answer.content().readableBytes());
        try {
            observer.onEnd(refused);
        } catch (RuntimeException e) {
            log.warn("exchange observer failed", e);
        }
    }

    private void releasePartial() {
        if (inFlight && current == null) {
            // A request whose body was being read ends unanswered (refused, timed out, client gone).
            inFlight = false;
            lifecycle.requestEnded();
        }
        head = null;
        next = null;
        chunks.reset();
        if (body != null) {
            body.release();
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
