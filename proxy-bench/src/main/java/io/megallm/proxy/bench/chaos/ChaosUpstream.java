package io.megallm.proxy.bench.chaos;

import io.megallm.proxy.bench.MockUpstreamServer;
import io.megallm.proxy.transport.Transport;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.DefaultHttpContent;
import io.netty.handler.codec.http.DefaultHttpResponse;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.util.CharsetUtil;
import io.netty.util.concurrent.ScheduledFuture;

import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.LongAdder;

/**
 * A mock MegaLLM upstream that misbehaves, for the chaos run. By key: {@code sk-chaos-dead*}
 * answers 401, {@code sk-chaos-banned*} 403, {@code sk-chaos-limited*} 429 with
 * {@code Retry-After: 2}; other keys are healthy. At random, per chat request (unless the request
 * says {@code X-Chaos-Faults: off}): a reset right after reading the request, a stall before the
 * head longer than the proxy's upstream timeout, a drop in the middle of the answer, a 5xx, a 429.
 * Every so often it stops listening for a moment (connections refused).
 *
 * <p>It remembers what it did so the run can judge the proxy fairly: the faults it injected per
 * {@code X-Request-Id} (the proxy forwards the client's id), the windows in which it refused
 * connections, and for request ids starting with {@code t-} (tracked: the clients that vanish or
 * stall) when each upstream exchange started and ended. It counts its open connections and the
 * exchanges in progress, which must both fall back once the clients are gone.
 */
public final class ChaosUpstream {

    /** Request header: {@code off} disables random faults (the tracked patterns need a real answer). */
    static final String X_CHAOS_FAULTS = "x-chaos-faults";
    /** Request header: stall this many ms before the head, then answer normally. */
    static final String X_CHAOS_STALL_MS = "x-chaos-stall-ms";
    static final String X_MOCK_EVENTS = "x-mock-events";
    static final String X_MOCK_INTERVAL_MS = "x-mock-interval-ms";
    static final String X_MOCK_PAD = "x-mock-pad";

    /** What the mock did to one attempt. */
    enum Fault { RESET_AFTER_READ, STALL_HEAD, DROP_MID, STATUS_5XX, STATUS_429, KEY_401, KEY_403, KEY_429 }

    /** One upstream exchange of a tracked request; {@code endNanos == 0} while it is open. */
    static final class Exchange {
        final String requestId;
        final long startNanos;
        volatile long endNanos;
        volatile boolean completed;

        Exchange(String requestId, long startNanos) {
            this.requestId = requestId;
            this.startNanos = startNanos;
        }
    }

    /** A time span in which the mock refused connections. */
    record Window(long startNanos, long endNanos) {
    }

    private static final byte[] COMPLETION = MockUpstreamServer.COMPLETION.getBytes(CharsetUtil.UTF_8);
    private static final byte[] DONE = "data: [DONE]\n\n".getBytes(CharsetUtil.US_ASCII);
    /** Bounds what is remembered, so that a 30-minute run cannot grow the harness without limit. */
    private static final int MAX_REMEMBERED = 2_000_000;

    private final double faultRate;
    private final long stallMillis;
    private final AtomicInteger openConnections = new AtomicInteger();
    private final AtomicInteger inProgress = new AtomicInteger();
    private final AtomicInteger activeStreams = new AtomicInteger();
    private final LongAdder requests = new LongAdder();
    private final LongAdder connectionsAccepted = new LongAdder();
    private final Map<String, LongAdder> byKind = new ConcurrentHashMap<>();
    private final Map<String, List<Fault>> faults = new ConcurrentHashMap<>();
    private final Map<String, List<Exchange>> tracked = new ConcurrentHashMap<>();
    private final List<Window> refusals = new ArrayList<>();
    /** {nanoTime, healthy key's number} of every random 429, to explain "no key available" answers. */
    private final List<long[]> healthy429 = new ArrayList<>();
    private final Object refusalLock = new Object();
    private EventLoopGroup group;
    private volatile Channel server;
    private int port;
    private long refusingSince;

    /**
     * @param faultRate   share of chat requests (with faults on) that get a random fault
     * @param stallMillis how long a stalled attempt waits before it closes (more than the proxy's timeout)
     */
    public ChaosUpstream(double faultRate, long stallMillis) {
        this.faultRate = faultRate;
        this.stallMillis = stallMillis;
    }

    public ChaosUpstream start() throws InterruptedException {
        Transport transport = Transport.best();
        group = transport.newGroup(1, "chaos-upstream");
        server = bootstrap(transport).bind("127.0.0.1", 0).sync().channel();
        port = ((InetSocketAddress) server.localAddress()).getPort();
        return this;
    }

    private ServerBootstrap bootstrap(Transport transport) {
        return new ServerBootstrap()
                .group(group)
                .channel(transport.serverChannel())
                .option(ChannelOption.SO_BACKLOG, 4096)
                .option(ChannelOption.SO_REUSEADDR, true)
                .childOption(ChannelOption.TCP_NODELAY, true)
                .childHandler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        openConnections.incrementAndGet();
                        connectionsAccepted.increment();
                        ch.closeFuture().addListener(f -> openConnections.decrementAndGet());
                        ch.pipeline().addLast(new HttpServerCodec(), new HttpObjectAggregator(1024 * 1024),
                                new Handler());
                    }
                });
    }

    public int port() {
        return port;
    }

    /**
     * Stops listening for {@code millis} (connect attempts are refused), then listens again on the
     * same port. Runs on the caller's thread; bounded: it gives up re-binding after 5 s.
     */
    public void refuseFor(long millis) throws InterruptedException {
        Channel s = server;
        if (s == null) {
            return;
        }
        synchronized (refusalLock) {
            refusingSince = System.nanoTime();
        }
        s.close().sync();
        Thread.sleep(millis);
        Transport transport = Transport.best();
        long giveUp = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        Channel again = null;
        while (again == null && System.nanoTime() < giveUp) {
            try {
                again = bootstrap(transport).bind("127.0.0.1", port).sync().channel();
            } catch (Exception e) {
                // The port can be briefly held (e.g. by an outgoing socket that got it); try again.
                Thread.sleep(50);
            }
        }
        synchronized (refusalLock) {
            refusals.add(new Window(refusingSince, System.nanoTime()));
            refusingSince = 0;
        }
        if (again == null) {
            throw new IllegalStateException("the chaos upstream could not listen on port " + port + " again");
        }
        server = again;
    }

    public void stop() {
        Channel s = server;
        if (s != null) {
            s.close().syncUninterruptibly();
        }
        if (group != null) {
            group.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        }
    }

    public int openConnections() {
        return openConnections.get();
    }

    /** Requests read whose answer has neither ended nor been cut by a close. */
    public int exchangesInProgress() {
        return inProgress.get();
    }

    public int activeStreams() {
        return activeStreams.get();
    }

    public long requests() {
        return requests.sum();
    }

    public long connectionsAccepted() {
        return connectionsAccepted.sum();
    }

    /** What the mock answered, by kind (ok, stream, 401_dead, fault names, ...). */
    public Map<String, Long> answersByKind() {
        Map<String, Long> m = new java.util.TreeMap<>();
        byKind.forEach((k, v) -> m.put(k, v.sum()));
        return m;
    }

    /** The faults injected into the attempts of one request, empty when none. */
    List<Fault> faultsOf(String requestId) {
        List<Fault> f = faults.get(requestId);
        return f == null ? List.of() : f;
    }

    /** True when a refusal window overlaps {@code [from, to]} (nanoTime). */
    boolean refusedDuring(long from, long to) {
        synchronized (refusalLock) {
            if (refusingSince != 0 && refusingSince <= to) {
                return true;
            }
            for (Window w : refusals) {
                if (w.startNanos() <= to && w.endNanos() >= from) {
                    return true;
                }
            }
        }
        return false;
    }

    int refusalWindows() {
        synchronized (refusalLock) {
            return refusals.size();
        }
    }

    private void note429(String auth) {
        // "Bearer sk-chaos-good-000N-...": N names the healthy key (0: another key).
        String prefix = "Bearer sk-chaos-good-000";
        int n = auth.startsWith(prefix) && auth.length() > prefix.length() ? auth.charAt(prefix.length()) - '0' : 0;
        synchronized (healthy429) {
            if (healthy429.size() < MAX_REMEMBERED) {
                healthy429.add(new long[] {System.nanoTime(), n});
            }
        }
    }

    /** How many distinct healthy keys got a random 429 within {@code [from, to]} (nanoTime). */
    int healthyKeysAnswered429(long from, long to) {
        java.util.Set<Long> keys = new java.util.HashSet<>();
        synchronized (healthy429) {
            for (long[] e : healthy429) {
                if (e[0] >= from && e[0] <= to) {
                    keys.add(e[1]);
                }
            }
        }
        return keys.size();
    }

    /** The upstream exchanges of a tracked request (empty when it never reached the mock). */
    List<Exchange> exchangesOf(String requestId) {
        List<Exchange> l = tracked.get(requestId);
        if (l == null) {
            return List.of();
        }
        synchronized (l) {
            return List.copyOf(l);
        }
    }

    private void count(String kind) {
        byKind.computeIfAbsent(kind, k -> new LongAdder()).increment();
    }

    private void remember(String requestId, Fault f) {
        if (requestId == null || faults.size() >= MAX_REMEMBERED) {
            return;
        }
        faults.compute(requestId, (k, v) -> {
            List<Fault> l = v == null ? new ArrayList<>(2) : v;
            l.add(f);
            return l;
        });
    }

    private Fault pickFault(boolean stream) {
        ThreadLocalRandom r = ThreadLocalRandom.current();
        if (r.nextDouble() >= faultRate) {
            return null;
        }
        // Weights: drops and 5xx most often (the common real failures), 429 least (each one rests a
        // healthy key for a second, and too many would leave no key at all).
        double x = r.nextDouble();
        if (x < 0.25) {
            return Fault.DROP_MID;
        } else if (x < 0.50) {
            return Fault.STATUS_5XX;
        } else if (x < 0.70) {
            return Fault.RESET_AFTER_READ;
        } else if (x < 0.85) {
            return Fault.STALL_HEAD;
        }
        return stream ? Fault.DROP_MID : Fault.STATUS_429;
    }

    private static long headerLong(HttpHeaders h, String name, long fallback, long min, long max) {
        String v = h.get(name);
        if (v == null) {
            return fallback;
        }
        try {
            return Math.max(min, Math.min(max, Long.parseLong(v.trim())));
        } catch (NumberFormatException e) {
            return fallback;
        }
    }

    private final class Handler extends SimpleChannelInboundHandler<FullHttpRequest> {
        /** The exchange in progress on this connection (one at a time: HTTP/1.1 without pipelining). */
        private Exchange current;
        private boolean busy;

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            end(false);
            ctx.fireChannelInactive();
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            // Resets from the proxy are part of the run (it closes upstreams of clients that left).
            ctx.close();
        }

        private void begin(String requestId) {
            busy = true;
            inProgress.incrementAndGet();
            if (requestId != null && requestId.startsWith("t-") && tracked.size() < MAX_REMEMBERED) {
                Exchange e = new Exchange(requestId, System.nanoTime());
                current = e;
                List<Exchange> l = tracked.computeIfAbsent(requestId, k -> new ArrayList<>(1));
                synchronized (l) {
                    l.add(e);
                }
            }
        }

        /** The answer ended ({@code completed}) or the connection closed under it. */
        void end(boolean completed) {
            if (!busy) {
                return;
            }
            busy = false;
            inProgress.decrementAndGet();
            if (current != null) {
                current.completed = completed;
                current.endNanos = System.nanoTime();
                current = null;
            }
        }

        @Override
        protected void channelRead0(ChannelHandlerContext ctx, FullHttpRequest req) {
            requests.increment();
            HttpHeaders h = req.headers();
            String requestId = h.get("x-request-id");
            String auth = h.get(HttpHeaderNames.AUTHORIZATION, "");
            boolean keepAlive = HttpUtil.isKeepAlive(req);
            begin(requestId);
            if (auth.startsWith("Bearer sk-chaos-dead")) {
                count("401_dead_key");
                remember(requestId, Fault.KEY_401);
                json(ctx, keepAlive, HttpResponseStatus.UNAUTHORIZED, "{\"error\":{\"message\":\"Incorrect API key "
                        + "provided.\",\"type\":\"invalid_request_error\",\"code\":\"invalid_api_key\"}}", null);
                return;
            }
            if (auth.startsWith("Bearer sk-chaos-banned")) {
                count("403_banned_key");
                remember(requestId, Fault.KEY_403);
                json(ctx, keepAlive, HttpResponseStatus.FORBIDDEN, "{\"error\":{\"message\":\"This key is banned.\","
                        + "\"type\":\"permission_error\",\"code\":\"forbidden\"}}", null);
                return;
            }
            if (auth.startsWith("Bearer sk-chaos-limited")) {
                count("429_limited_key");
                remember(requestId, Fault.KEY_429);
                json(ctx, keepAlive, HttpResponseStatus.TOO_MANY_REQUESTS, "{\"error\":{\"message\":\"Rate limit "
                        + "reached.\",\"type\":\"rate_limit_error\"}}", "2");
                return;
            }
            if (!req.uri().startsWith("/v1/chat/completions")) {
                count("404");
                json(ctx, keepAlive, HttpResponseStatus.NOT_FOUND, "{\"error\":{\"message\":\"Unknown path\","
                        + "\"type\":\"invalid_request_error\"}}", null);
                return;
            }
            boolean stream = MockUpstreamServer.wantsStream(req.content());
            Fault fault = "off".equalsIgnoreCase(h.get(X_CHAOS_FAULTS)) ? null : pickFault(stream);
            if (fault != null) {
                remember(requestId, fault);
                count(fault.name().toLowerCase());
            }
            long stall = headerLong(h, X_CHAOS_STALL_MS, 0, 0, 60_000);
            int events = (int) headerLong(h, X_MOCK_EVENTS, 10, 0, 100_000);
            long interval = headerLong(h, X_MOCK_INTERVAL_MS, 30, 1, 60_000);
            int pad = (int) headerLong(h, X_MOCK_PAD, 0, 0, 64 * 1024);
            if (fault == Fault.RESET_AFTER_READ) {
                // SO_LINGER 0: the proxy sees a reset, not a clean end.
                ctx.channel().config().setOption(ChannelOption.SO_LINGER, 0);
                ctx.close();
                return;
            }
            if (fault == Fault.STALL_HEAD) {
                ctx.executor().schedule(() -> {
                    ctx.close();
                }, stallMillis, TimeUnit.MILLISECONDS);
                return;
            }
            if (fault == Fault.STATUS_5XX) {
                int[] codes = {500, 502, 503, 504};
                HttpResponseStatus s = HttpResponseStatus.valueOf(codes[ThreadLocalRandom.current().nextInt(codes.length)]);
                json(ctx, keepAlive, s, "{\"error\":{\"message\":\"The server had an error.\",\"type\":\"server_error\"}}",
                        null);
                return;
            }
            if (fault == Fault.STATUS_429) {
                note429(auth);
                json(ctx, keepAlive, HttpResponseStatus.TOO_MANY_REQUESTS, "{\"error\":{\"message\":\"Rate limit "
                        + "reached.\",\"type\":\"rate_limit_error\"}}", "1");
                return;
            }
            boolean drop = fault == Fault.DROP_MID;
            Runnable answer = stream
                    ? () -> stream(ctx, keepAlive, drop ? Math.min(2, events) : events, interval, pad, drop)
                    : () -> completion(ctx, keepAlive, drop);
            if (stall > 0) {
                ctx.executor().schedule(() -> {
                    if (ctx.channel().isActive()) {
                        answer.run();
                    }
                }, stall, TimeUnit.MILLISECONDS);
            } else {
                answer.run();
            }
        }

        private void completion(ChannelHandlerContext ctx, boolean keepAlive, boolean drop) {
            if (drop) {
                // The head promises the whole body; half of it comes, then the connection closes.
                FullHttpResponse r = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK,
                        Unpooled.wrappedBuffer(COMPLETION, 0, COMPLETION.length / 2));
                r.headers().set(HttpHeaderNames.CONTENT_TYPE, HttpHeaderValues.APPLICATION_JSON)
                        .setInt(HttpHeaderNames.CONTENT_LENGTH, COMPLETION.length);
                ctx.writeAndFlush(r).addListener(ChannelFutureListener.CLOSE);
                return;
            }
            count("ok_chat");
            FullHttpResponse r = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK,
                    Unpooled.wrappedBuffer(COMPLETION));
            r.headers().set(HttpHeaderNames.CONTENT_TYPE, HttpHeaderValues.APPLICATION_JSON)
                    .setInt(HttpHeaderNames.CONTENT_LENGTH, COMPLETION.length);
            finish(ctx, keepAlive, r);
        }

        private void json(ChannelHandlerContext ctx, boolean keepAlive, HttpResponseStatus status, String body,
                          String retryAfter) {
            FullHttpResponse r = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, status,
                    Unpooled.copiedBuffer(body, CharsetUtil.UTF_8));
            r.headers().set(HttpHeaderNames.CONTENT_TYPE, HttpHeaderValues.APPLICATION_JSON)
                    .setInt(HttpHeaderNames.CONTENT_LENGTH, r.content().readableBytes());
            if (retryAfter != null) {
                r.headers().set(HttpHeaderNames.RETRY_AFTER, retryAfter);
            }
            finish(ctx, keepAlive, r);
        }

        private void finish(ChannelHandlerContext ctx, boolean keepAlive, FullHttpResponse r) {
            if (!keepAlive) {
                r.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
            }
            end(true);
            if (keepAlive) {
                ctx.writeAndFlush(r, ctx.voidPromise());
            } else {
                ctx.writeAndFlush(r).addListener(ChannelFutureListener.CLOSE);
            }
        }

        private void stream(ChannelHandlerContext ctx, boolean keepAlive, int count, long interval, int pad,
                            boolean drop) {
            HttpResponse head = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK);
            head.headers().set(HttpHeaderNames.CONTENT_TYPE, "text/event-stream; charset=utf-8")
                    .set(HttpHeaderNames.CACHE_CONTROL, "no-cache");
            HttpUtil.setTransferEncodingChunked(head, true);
            if (!keepAlive) {
                head.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
            }
            ctx.writeAndFlush(head);
            if (!drop) {
                count("ok_stream");
            }
            activeStreams.incrementAndGet();
            new StreamTask(ctx, this, keepAlive, count, pad, drop).start(interval);
        }
    }

    /** One SSE stream on the connection's event loop; an event is skipped while the proxy does not read. */
    private final class StreamTask implements Runnable {
        private final ChannelHandlerContext ctx;
        private final Handler handler;
        private final boolean keepAlive;
        private final int count;
        private final int pad;
        private final boolean drop;
        private int sent;
        private boolean ended;
        private ScheduledFuture<?> timer;

        StreamTask(ChannelHandlerContext ctx, Handler handler, boolean keepAlive, int count, int pad, boolean drop) {
            this.ctx = ctx;
            this.handler = handler;
            this.keepAlive = keepAlive;
            this.count = count;
            this.pad = pad;
            this.drop = drop;
        }

        void start(long interval) {
            ctx.channel().closeFuture().addListener(f -> end());
            timer = ctx.executor().scheduleAtFixedRate(this, interval, interval, TimeUnit.MILLISECONDS);
        }

        private void end() {
            if (ended) {
                return;
            }
            ended = true;
            activeStreams.decrementAndGet();
            if (timer != null) {
                timer.cancel(false);
            }
        }

        @Override
        public void run() {
            Channel ch = ctx.channel();
            if (ended) {
                return;
            }
            if (!ch.isActive()) {
                end();
                return;
            }
            if (sent < count) {
                int i = sent++;
                if (!ch.isWritable()) {
                    return;
                }
                ByteBuf b = ctx.alloc().buffer(96 + pad);
                ByteBufUtil.writeAscii(b, "data: {\"object\":\"chat.completion.chunk\",\"sent_ns\":");
                ByteBufUtil.writeAscii(b, Long.toString(System.nanoTime()));
                if (pad > 0) {
                    ByteBufUtil.writeAscii(b, ",\"pad\":\"");
                    b.writeCharSequence("x".repeat(pad), CharsetUtil.US_ASCII);
                    b.writeByte('"');
                }
                ByteBufUtil.writeAscii(b, ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok" + i + " \"}}]}\n\n");
                ctx.writeAndFlush(new DefaultHttpContent(b), ctx.voidPromise());
                return;
            }
            end();
            if (drop) {
                // Mid-stream failure: no [DONE], no last chunk, a reset.
                ch.config().setOption(ChannelOption.SO_LINGER, 0);
                ctx.close();
                return;
            }
            ctx.write(new DefaultHttpContent(Unpooled.wrappedBuffer(DONE)), ctx.voidPromise());
            handler.end(true);
            if (keepAlive) {
                ctx.writeAndFlush(LastHttpContent.EMPTY_LAST_CONTENT, ctx.voidPromise());
            } else {
                ctx.writeAndFlush(LastHttpContent.EMPTY_LAST_CONTENT).addListener(ChannelFutureListener.CLOSE);
            }
        }
    }
}
