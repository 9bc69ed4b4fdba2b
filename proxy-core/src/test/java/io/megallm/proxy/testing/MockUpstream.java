package io.megallm.proxy.testing;

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
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.DefaultHttpContent;
import io.netty.handler.codec.http.DefaultHttpResponse;
import io.netty.handler.codec.http.DefaultHttpHeaders;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.util.concurrent.ScheduledFuture;

import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A scriptable stand-in for the MegaLLM API over a real socket: answers per key with a chosen
 * behaviour, records every request it receives, and reports connections it saw close.
 */
public final class MockUpstream implements AutoCloseable {

    /** How the mock answers one request. */
    @FunctionalInterface
    public interface Behavior {
        void respond(ChannelHandlerContext ctx, FullHttpRequest request);
    }

    /** One request as the upstream saw it. */
    public record Received(String method, String uri, HttpHeaders headers, byte[] body, String key) {
        public String bodyText() {
            return new String(body, StandardCharsets.UTF_8);
        }
    }

    private final EventLoopGroup group = new MultiThreadIoEventLoopGroup(1, NioIoHandler.newFactory());
    private final Channel server;
    private final Map<String, Behavior> byKey = new ConcurrentHashMap<>();
    private volatile Behavior fallback = json(200, "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\"}");
    private final BlockingQueue<Received> received = new LinkedBlockingQueue<>();
    private final List<Received> all = new CopyOnWriteArrayList<>();
    private final BlockingQueue<String> closedStreams = new LinkedBlockingQueue<>();
    private final AtomicInteger connections = new AtomicInteger();
    private final AtomicInteger open = new AtomicInteger();

    public MockUpstream() throws InterruptedException {
        server = new ServerBootstrap()
                .group(group)
                .channel(NioServerSocketChannel.class)
                .childHandler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        connections.incrementAndGet();
                        open.incrementAndGet();
                        ch.closeFuture().addListener(f -> open.decrementAndGet());
                        ch.pipeline().addLast(new HttpServerCodec(), new HttpObjectAggregator(64 * 1024 * 1024),
                                new Handler());
                    }
                })
                .bind("127.0.0.1", 0).sync().channel();
    }

    public int port() {
        return ((InetSocketAddress) server.localAddress()).getPort();
    }

    public String baseUrl() {
        return "http://127.0.0.1:" + port() + "/v1";
    }

    /** The behaviour for requests carrying {@code Authorization: Bearer <key>}. */
    public MockUpstream on(String key, Behavior behavior) {
        byKey.put(key, behavior);
        return this;
    }

    public MockUpstream otherwise(Behavior behavior) {
        fallback = behavior;
        return this;
    }

    /** The next request the mock received, waiting up to 10 s. */
    public Received take() throws InterruptedException {
        Received r = received.poll(10, TimeUnit.SECONDS);
        if (r == null) {
            throw new AssertionError("the mock upstream received no request");
        }
        return r;
    }

    public List<Received> all() {
        return List.copyOf(all);
    }

    public int requestCount() {
        return all.size();
    }

    /** Waits until a connection that served a request closes; returns the key of its last request. */
    public String awaitClosedStream(long timeout, TimeUnit unit) throws InterruptedException {
        return closedStreams.poll(timeout, unit);
    }

    public int connectionsOpened() {
        return connections.get();
    }

    /** Connections open now, as the mock sees them. */
    public int openConnections() {
        return open.get();
    }

    @Override
    public void close() {
        server.close().syncUninterruptibly();
        group.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
    }

    private final class Handler extends SimpleChannelInboundHandler<FullHttpRequest> {
        private String lastKey;

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            if (lastKey != null) {
                closedStreams.add(lastKey);
            }
            ctx.fireChannelInactive();
        }

        @Override
        protected void channelRead0(ChannelHandlerContext ctx, FullHttpRequest request) {
            String auth = request.headers().get(HttpHeaderNames.AUTHORIZATION, "");
            String key = auth.startsWith("Bearer ") ? auth.substring(7) : auth;
            Received r = new Received(request.method().name(), request.uri(),
                    new DefaultHttpHeaders().add(request.headers()), ByteBufUtil.getBytes(request.content()), key);
            lastKey = key;
            all.add(r);
            received.add(r);
            byKey.getOrDefault(key, fallback).respond(ctx, request);
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            ctx.close();
        }
    }

    // ---- behaviours ----------------------------------------------------------------------------

    public static Behavior json(int status, String body) {
        return json(status, body, Map.of());
    }

    public static Behavior json(int status, String body, Map<String, String> headers) {
        return (ctx, req) -> {
            FullHttpResponse response = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1,
                    HttpResponseStatus.valueOf(status), Unpooled.copiedBuffer(body, StandardCharsets.UTF_8));
            response.headers().set(HttpHeaderNames.CONTENT_TYPE, "application/json");
            headers.forEach(response.headers()::set);
            HttpUtil.setContentLength(response, response.content().readableBytes());
            ctx.writeAndFlush(response);
        };
    }

    /** An answer that echoes the request body back, to prove the bytes arrived unchanged. */
    public static Behavior echo() {
        return (ctx, req) -> {
            FullHttpResponse response = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK,
                    req.content().retainedDuplicate());
            response.headers().set(HttpHeaderNames.CONTENT_TYPE, "application/octet-stream");
            HttpUtil.setContentLength(response, response.content().readableBytes());
            ctx.writeAndFlush(response);
        };
    }

    /** The SSE event the mock sends at position {@code i}. */
    public static String event(int i) {
        return "data: {\"choices\":[{\"delta\":{\"content\":\"tok" + i + "\"}}]}\n\n";
    }

    /** {@code events} SSE events, one every {@code intervalMillis}, then {@code [DONE]}; chunked. */
    public static Behavior sse(int events, long intervalMillis) {
        return stream(events, intervalMillis, false);
    }

    /** Like {@link #sse} but the connection drops after {@code events} events, without a clean end. */
    public static Behavior sseThenDrop(int events, long intervalMillis) {
        return stream(events, intervalMillis, true);
    }

    private static Behavior stream(int events, long intervalMillis, boolean drop) {
        return (ctx, req) -> {
            HttpResponse head = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK);
            head.headers().set(HttpHeaderNames.CONTENT_TYPE, "text/event-stream; charset=utf-8");
            head.headers().set(HttpHeaderNames.CACHE_CONTROL, "no-cache");
            HttpUtil.setTransferEncodingChunked(head, true);
            ctx.writeAndFlush(head);
            AtomicInteger sent = new AtomicInteger();
            ScheduledFuture<?>[] task = new ScheduledFuture<?>[1];
            task[0] = ctx.executor().scheduleAtFixedRate(() -> {
                if (!ctx.channel().isActive()) {
                    task[0].cancel(false);
                    return;
                }
                int i = sent.getAndIncrement();
                if (i < events) {
                    ctx.writeAndFlush(new DefaultHttpContent(Unpooled.copiedBuffer(event(i), StandardCharsets.UTF_8)));
                    return;
                }
                task[0].cancel(false);
                if (drop) {
                    ctx.close();
                } else {
                    ctx.writeAndFlush(new DefaultHttpContent(
                            Unpooled.copiedBuffer("data: [DONE]\n\n", StandardCharsets.UTF_8)));
                    ctx.writeAndFlush(LastHttpContent.EMPTY_LAST_CONTENT);
                }
            }, 0, intervalMillis, TimeUnit.MILLISECONDS);
        };
    }

    /** Never answers; the connection stays open until the other side closes it. */
    public static Behavior stall() {
        return (ctx, req) -> {
        };
    }

    /** Closes the connection without answering. */
    public static Behavior hangUp() {
        return (ctx, req) -> ctx.close();
    }

    /** Resets the connection (RST, not FIN) after reading the whole request, without answering. */
    public static Behavior reset() {
        return (ctx, req) -> {
            ctx.channel().config().setOption(ChannelOption.SO_LINGER, 0);
            ctx.close();
        };
    }

    /**
     * The n-th request the mock receives (whatever its key) gets the n-th behaviour; requests
     * after the last one get the last. For a script of what the upstream does, in order.
     */
    public static Behavior sequence(Behavior... script) {
        AtomicInteger next = new AtomicInteger();
        return (ctx, req) -> script[Math.min(next.getAndIncrement(), script.length - 1)].respond(ctx, req);
    }

    /** A body of {@code size} bytes with a Content-Length. */
    public static Behavior bytes(int size) {
        return (ctx, req) -> {
            ByteBuf body = Unpooled.buffer(size);
            for (int i = 0; i < size; i++) {
                body.writeByte('a' + (i % 26));
            }
            FullHttpResponse response = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK, body);
            HttpUtil.setContentLength(response, size);
            ctx.writeAndFlush(response).addListener(ChannelFutureListener.CLOSE_ON_FAILURE);
        };
    }

}
