package io.megallm.proxy.bench;

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
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.util.AsciiString;
import io.netty.util.CharsetUtil;
import io.netty.util.concurrent.ScheduledFuture;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.LongAdder;

/**
 * A fast stand-in for the MegaLLM API, for trying the proxy without real keys and for the
 * load harness. {@code POST /v1/chat/completions} answers a fixed ~600-byte completion, or with
 * {@code "stream":true} an SSE stream of {@code events} events {@code interval} ms apart, each
 * carrying its send time as {@code "sent_ns":<System.nanoTime()>} (CLOCK_MONOTONIC on Linux, the
 * same clock in every process of the machine). Keys starting with {@code sk-bad} get 401, keys
 * starting with {@code sk-slow} get 429 with {@code Retry-After: 30}. A chat request whose body names
 * no {@code "model"} gets OpenAI's 400, so that what {@code DEFAULT_MODEL} is for shows.
 *
 * <p>Per-request overrides for the load harness (plain request headers, which proxies pass on):
 * {@code X-Mock-Events}, {@code X-Mock-Interval-Ms}, {@code X-Mock-Pad} (bytes of padding in each
 * event). An event is skipped, not queued, while the connection is not writable, so a slow
 * reader never makes the mock buffer without bound. {@code GET /mock/stats} reports counters.
 *
 * <p>{@code POST /v1/embeddings} answers an OpenAI embeddings list of exactly
 * {@code X-Mock-Answer-Bytes} bytes (1 KiB to 64 MiB, default 1 MiB; {@link MockEmbeddings}), the
 * shape of a batch embeddings call: megabytes of JSON numbers. A body without a model is answered too.
 *
 * <pre>java -jar proxy-bench/target/megallm-proxy-bench.jar mock [port] [events] [intervalMs]</pre>
 */
public final class MockUpstreamServer {

    public static final String COMPLETION = "{\"id\":\"chatcmpl-mock0000000000000000000000\",\"object\":\"chat.completion\","
            + "\"created\":1764000000,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
            + "\"assistant\",\"content\":\"Hello! This answer comes from the megallm-proxy mock upstream. It is a"
            + " fixed text of a realistic size, so that benchmarks measure the relay and not the generator.\","
            + "\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":12,"
            + "\"completion_tokens\":38,\"total_tokens\":50,\"prompt_tokens_details\":{\"cached_tokens\":0},"
            + "\"completion_tokens_details\":{\"reasoning_tokens\":0}},\"system_fingerprint\":\"fp_mock\"}";

    private static final ByteBuf COMPLETION_BYTES = Unpooled.unreleasableBuffer(
            Unpooled.directBuffer().writeBytes(COMPLETION.getBytes(CharsetUtil.UTF_8)).asReadOnly());

    static final AsciiString X_MOCK_EVENTS = AsciiString.cached("x-mock-events");
    static final AsciiString X_MOCK_INTERVAL_MS = AsciiString.cached("x-mock-interval-ms");
    static final AsciiString X_MOCK_PAD = AsciiString.cached("x-mock-pad");

    private static final ByteBuf MODEL_FIELD = Unpooled.unreleasableBuffer(
            Unpooled.wrappedBuffer("\"model\"".getBytes(CharsetUtil.US_ASCII)));
    /** OpenAI's own answer to a chat request that names no model. */
    static final String NO_MODEL = "{\"error\":{\"message\":\"you must provide a model parameter\","
            + "\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}}";
    private static final ByteBuf STREAM_TRUE = Unpooled.unreleasableBuffer(
            Unpooled.wrappedBuffer("\"stream\":true".getBytes(CharsetUtil.US_ASCII)));
    private static final ByteBuf STREAM_TRUE_SPACED = Unpooled.unreleasableBuffer(
            Unpooled.wrappedBuffer("\"stream\": true".getBytes(CharsetUtil.US_ASCII)));
    private static final byte[] EVENT_HEAD =
            "data: {\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"sent_ns\":"
                    .getBytes(CharsetUtil.US_ASCII);
    private static final byte[] EVENT_MID = ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok"
            .getBytes(CharsetUtil.US_ASCII);
    private static final byte[] EVENT_TAIL = " \"}}]}\n\n".getBytes(CharsetUtil.US_ASCII);
    private static final byte[] PAD_FIELD = ",\"pad\":\"".getBytes(CharsetUtil.US_ASCII);
    private static final int MAX_PAD = 1024 * 1024;
    private static final ByteBuf DONE = Unpooled.unreleasableBuffer(
            Unpooled.directBuffer().writeBytes("data: [DONE]\n\n".getBytes(CharsetUtil.US_ASCII)).asReadOnly());

    private final int events;
    private final long intervalMillis;
    private final AtomicInteger connections = new AtomicInteger();
    private final AtomicInteger activeStreams = new AtomicInteger();
    private final LongAdder streamsStarted = new LongAdder();
    private final LongAdder eventsSent = new LongAdder();
    private final LongAdder eventsSkipped = new LongAdder();
    private final LongAdder requests = new LongAdder();
    /** Package-private for the tests, which check that answers leave only the cache's reference. */
    final MockEmbeddings embeddings = new MockEmbeddings();
    private EventLoopGroup group;
    private Channel server;

    public MockUpstreamServer(int events, long intervalMillis) {
        this.events = events;
        this.intervalMillis = intervalMillis;
    }

    public MockUpstreamServer start(String host, int port, int threads) throws InterruptedException {
        Transport transport = Transport.best();
        group = transport.newGroup(threads, "mock-upstream");
        server = new ServerBootstrap()
                .group(group)
                .channel(transport.serverChannel())
                .option(ChannelOption.SO_BACKLOG, 4096)
                .option(ChannelOption.SO_REUSEADDR, true)
                .childOption(ChannelOption.TCP_NODELAY, true)
                .childHandler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        connections.incrementAndGet();
                        ch.closeFuture().addListener(f -> connections.decrementAndGet());
                        ch.pipeline().addLast(new HttpServerCodec(), new HttpObjectAggregator(16 * 1024 * 1024),
                                new Handler());
                    }
                })
                .bind(host, port).sync().channel();
        return this;
    }

    public int port() {
        return ((java.net.InetSocketAddress) server.localAddress()).getPort();
    }

    /** Streams in progress now (a stream ends when its last event is sent or its connection closes). */
    public int activeStreams() {
        return activeStreams.get();
    }

    public void stop() {
        if (server != null) {
            server.close().syncUninterruptibly();
        }
        if (group != null) {
            group.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        }
        // After the event loops: no answer can ask for a body any more.
        embeddings.release();
    }

    String statsJson() {
        return "{\"connections\":" + connections.get() + ",\"active_streams\":" + activeStreams.get()
                + ",\"streams_started\":" + streamsStarted.sum() + ",\"events_sent\":" + eventsSent.sum()
                + ",\"events_skipped\":" + eventsSkipped.sum() + ",\"requests\":" + requests.sum() + "}";
    }

    public static boolean wantsStream(ByteBuf body) {
        return ByteBufUtil.indexOf(STREAM_TRUE, body) >= 0 || ByteBufUtil.indexOf(STREAM_TRUE_SPACED, body) >= 0;
    }

    static long headerLong(HttpHeaders headers, AsciiString name, long fallback, long min, long max) {
        String v = headers.get(name);
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
        @Override
        protected void channelRead0(ChannelHandlerContext ctx, FullHttpRequest req) {
            requests.increment();
            String auth = req.headers().get(HttpHeaderNames.AUTHORIZATION, "");
            String uri = req.uri();
            int q = uri.indexOf('?');
            String path = q < 0 ? uri : uri.substring(0, q);
            boolean keepAlive = HttpUtil.isKeepAlive(req);
            if (path.equals("/mock/stats")) {
                json(ctx, keepAlive, HttpResponseStatus.OK, statsJson());
                return;
            }
            if (auth.startsWith("Bearer sk-bad")) {
                json(ctx, keepAlive, HttpResponseStatus.UNAUTHORIZED,
                        "{\"error\":{\"message\":\"Invalid API key\",\"type\":\"authentication_error\",\"code\":\"invalid_api_key\"}}");
                return;
            }
            if (auth.startsWith("Bearer sk-slow")) {
                FullHttpResponse r = response(HttpResponseStatus.TOO_MANY_REQUESTS,
                        "{\"error\":{\"message\":\"Rate limit reached\",\"type\":\"rate_limit_error\"}}");
                r.headers().set(HttpHeaderNames.RETRY_AFTER, 30);
                write(ctx, keepAlive, r);
                return;
            }
            if (path.endsWith("/models")) {
                json(ctx, keepAlive, HttpResponseStatus.OK,
                        "{\"object\":\"list\",\"data\":[{\"id\":\"gpt-4o-mini\",\"object\":\"model\",\"owned_by\":\"mock\"}]}");
                return;
            }
            if (path.endsWith("/chat/completions")) {
                if (ByteBufUtil.indexOf(MODEL_FIELD, req.content()) < 0) {
                    // As the real API does: a request without a model is refused, not guessed at.
                    json(ctx, keepAlive, HttpResponseStatus.BAD_REQUEST, NO_MODEL);
                    return;
                }
                if (wantsStream(req.content())) {
                    HttpHeaders h = req.headers();
                    stream(ctx, keepAlive,
                            (int) headerLong(h, X_MOCK_EVENTS, events, 0, Integer.MAX_VALUE),
                            headerLong(h, X_MOCK_INTERVAL_MS, intervalMillis, 1, 3_600_000),
                            (int) headerLong(h, X_MOCK_PAD, 0, 0, MAX_PAD));
                } else {
                    FullHttpResponse r = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK,
                            COMPLETION_BYTES.duplicate());
                    r.headers().set(HttpHeaderNames.CONTENT_TYPE, HttpHeaderValues.APPLICATION_JSON)
                            .setInt(HttpHeaderNames.CONTENT_LENGTH, COMPLETION_BYTES.readableBytes());
                    write(ctx, keepAlive, r);
                }
                return;
            }
            if (path.endsWith("/embeddings") && req.method().equals(HttpMethod.POST)) {
                int size = MockEmbeddings.requestedSize(req.headers());
                FullHttpResponse r = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK,
                        embeddings.answer(size));
                r.headers().set(HttpHeaderNames.CONTENT_TYPE, HttpHeaderValues.APPLICATION_JSON)
                        .setInt(HttpHeaderNames.CONTENT_LENGTH, size);
                write(ctx, keepAlive, r);
                return;
            }
            json(ctx, keepAlive, HttpResponseStatus.NOT_FOUND,
                    "{\"error\":{\"message\":\"Unknown path\",\"type\":\"invalid_request_error\"}}");
        }

        private void stream(ChannelHandlerContext ctx, boolean keepAlive, int count, long interval, int pad) {
            HttpResponse head = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK);
            head.headers().set(HttpHeaderNames.CONTENT_TYPE, "text/event-stream; charset=utf-8")
                    .set(HttpHeaderNames.CACHE_CONTROL, "no-cache");
            HttpUtil.setTransferEncodingChunked(head, true);
            if (!keepAlive) {
                head.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
            }
            ctx.writeAndFlush(head);
            activeStreams.incrementAndGet();
            streamsStarted.increment();
            new StreamTask(ctx, keepAlive, count, pad).start(interval);
        }

        private void json(ChannelHandlerContext ctx, boolean keepAlive, HttpResponseStatus status, String body) {
            write(ctx, keepAlive, response(status, body));
        }

        private FullHttpResponse response(HttpResponseStatus status, String body) {
            FullHttpResponse r = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, status,
                    Unpooled.copiedBuffer(body, CharsetUtil.UTF_8));
            r.headers().set(HttpHeaderNames.CONTENT_TYPE, HttpHeaderValues.APPLICATION_JSON)
                    .setInt(HttpHeaderNames.CONTENT_LENGTH, r.content().readableBytes());
            return r;
        }

        private void write(ChannelHandlerContext ctx, boolean keepAlive, FullHttpResponse r) {
            if (keepAlive) {
                ctx.writeAndFlush(r, ctx.voidPromise());
            } else {
                r.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
                ctx.writeAndFlush(r).addListener(ChannelFutureListener.CLOSE);
            }
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            ctx.close();
        }
    }

    /** One SSE stream: a fixed-rate timer on the connection's event loop. */
    private final class StreamTask implements Runnable {
        private final ChannelHandlerContext ctx;
        private final boolean keepAlive;
        private final int count;
        private final int pad;
        private int sent;
        private boolean ended;
        private ScheduledFuture<?> timer;

        StreamTask(ChannelHandlerContext ctx, boolean keepAlive, int count, int pad) {
            this.ctx = ctx;
            this.keepAlive = keepAlive;
            this.count = count;
            this.pad = pad;
        }

        void start(long interval) {
            ctx.channel().closeFuture().addListener(f -> end());
            timer = ctx.executor().scheduleAtFixedRate(this, 0, interval, TimeUnit.MILLISECONDS);
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
            if (ended) {
                return;
            }
            Channel ch = ctx.channel();
            if (!ch.isActive()) {
                end();
                return;
            }
            if (sent < count) {
                int i = sent++;
                if (!ch.isWritable()) {
                    eventsSkipped.increment();
                    return;
                }
                ByteBuf b = ctx.alloc().buffer(EVENT_HEAD.length + EVENT_MID.length + EVENT_TAIL.length + 40
                        + (pad > 0 ? pad + PAD_FIELD.length + 1 : 0));
                b.writeBytes(EVENT_HEAD);
                ByteBufUtil.writeAscii(b, Long.toString(System.nanoTime()));
                if (pad > 0) {
                    b.writeBytes(PAD_FIELD);
                    for (int k = 0; k < pad; k++) {
                        b.writeByte('x');
                    }
                    b.writeByte('"');
                }
                b.writeBytes(EVENT_MID);
                ByteBufUtil.writeAscii(b, Integer.toString(i));
                b.writeBytes(EVENT_TAIL);
                eventsSent.increment();
                ctx.writeAndFlush(new DefaultHttpContent(b), ctx.voidPromise());
                return;
            }
            end();
            ctx.write(new DefaultHttpContent(DONE.duplicate()), ctx.voidPromise());
            if (keepAlive) {
                ctx.writeAndFlush(LastHttpContent.EMPTY_LAST_CONTENT, ctx.voidPromise());
            } else {
                ctx.writeAndFlush(LastHttpContent.EMPTY_LAST_CONTENT).addListener(ChannelFutureListener.CLOSE);
            }
        }
    }

    /** {@code [port] [events] [intervalMs] [threads]}; port 0 picks a free port. */
    public static void main(String[] args) throws InterruptedException {
        int port = args.length > 0 ? Integer.parseInt(args[0]) : 9000;
        int events = args.length > 1 ? Integer.parseInt(args[1]) : 20;
        long interval = args.length > 2 ? Long.parseLong(args[2]) : 50;
        int threads = args.length > 3 ? Integer.parseInt(args[3]) : 1;
        MockUpstreamServer mock = new MockUpstreamServer(events, interval).start("127.0.0.1", port, threads);
        System.out.println("mock upstream on http://127.0.0.1:" + mock.port() + "/v1 (" + events + " SSE events, "
                + interval + " ms apart); keys sk-bad* get 401, sk-slow* get 429");
        System.out.flush();
        Runtime.getRuntime().addShutdownHook(new Thread(mock::stop));
        Thread.currentThread().join();
    }
}
