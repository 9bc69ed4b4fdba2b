package io.megallm.proxy.bench;

import io.megallm.proxy.transport.Transport;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
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
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.handler.codec.http.QueryStringDecoder;
import io.netty.util.CharsetUtil;
import io.netty.util.concurrent.ScheduledFuture;

import java.util.concurrent.TimeUnit;

/**
 * A fast stand-in for the MegaLLM API, for trying the proxy without real keys and for the
 * load harness. {@code POST /v1/chat/completions} answers a fixed ~600-byte completion, or with
 * {@code "stream":true} an SSE stream of {@code events} events {@code interval} ms apart, each
 * carrying its send time ({@code System.nanoTime()}). Keys starting with {@code sk-bad} get 401,
 * keys starting with {@code sk-slow} get 429 with {@code Retry-After: 30}.
 *
 * <pre>java -cp proxy-bench/target/megallm-proxy-bench.jar io.megallm.proxy.bench.MockUpstreamServer [port] [events] [intervalMs]</pre>
 */
public final class MockUpstreamServer {

    static final String COMPLETION = "{\"id\":\"chatcmpl-mock0000000000000000000000\",\"object\":\"chat.completion\","
            + "\"created\":1764000000,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
            + "\"assistant\",\"content\":\"Hello! This answer comes from the megallm-proxy mock upstream. It is a"
            + " fixed text of a realistic size, so that benchmarks measure the relay and not the generator.\","
            + "\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":12,"
            + "\"completion_tokens\":38,\"total_tokens\":50,\"prompt_tokens_details\":{\"cached_tokens\":0},"
            + "\"completion_tokens_details\":{\"reasoning_tokens\":0}},\"system_fingerprint\":\"fp_mock\"}";

    private static final ByteBuf COMPLETION_BYTES = Unpooled.unreleasableBuffer(
            Unpooled.directBuffer().writeBytes(COMPLETION.getBytes(CharsetUtil.UTF_8)).asReadOnly());

    private final int events;
    private final long intervalMillis;
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
                .childOption(ChannelOption.TCP_NODELAY, true)
                .childHandler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
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

    public void stop() {
        if (server != null) {
            server.close().syncUninterruptibly();
        }
        if (group != null) {
            group.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        }
    }

    private final class Handler extends SimpleChannelInboundHandler<FullHttpRequest> {
        @Override
        protected void channelRead0(ChannelHandlerContext ctx, FullHttpRequest req) {
            String auth = req.headers().get(HttpHeaderNames.AUTHORIZATION, "");
            String path = new QueryStringDecoder(req.uri()).path();
            boolean keepAlive = HttpUtil.isKeepAlive(req);
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
                String body = req.content().toString(CharsetUtil.UTF_8);
                if (body.replace(" ", "").contains("\"stream\":true")) {
                    stream(ctx);
                } else {
                    FullHttpResponse r = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK,
                            COMPLETION_BYTES.duplicate());
                    r.headers().set(HttpHeaderNames.CONTENT_TYPE, HttpHeaderValues.APPLICATION_JSON)
                            .setInt(HttpHeaderNames.CONTENT_LENGTH, COMPLETION_BYTES.readableBytes());
                    write(ctx, keepAlive, r);
                }
                return;
            }
            json(ctx, keepAlive, HttpResponseStatus.NOT_FOUND,
                    "{\"error\":{\"message\":\"Unknown path\",\"type\":\"invalid_request_error\"}}");
        }

        private void stream(ChannelHandlerContext ctx) {
            HttpResponse head = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK);
            head.headers().set(HttpHeaderNames.CONTENT_TYPE, "text/event-stream; charset=utf-8")
                    .set(HttpHeaderNames.CACHE_CONTROL, "no-cache");
            HttpUtil.setTransferEncodingChunked(head, true);
            ctx.writeAndFlush(head);
            int[] sent = {0};
            ScheduledFuture<?>[] task = new ScheduledFuture<?>[1];
            Runnable tick = () -> {
                if (!ctx.channel().isActive()) {
                    if (task[0] != null) {
                        task[0].cancel(false);
                    }
                    return;
                }
                int i = sent[0]++;
                if (i < events) {
                    String event = "data: {\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"sent_ns\":"
                            + System.nanoTime() + ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok" + i
                            + " \"}}]}\n\n";
                    ctx.writeAndFlush(new DefaultHttpContent(Unpooled.copiedBuffer(event, CharsetUtil.UTF_8)));
                    return;
                }
                task[0].cancel(false);
                ctx.write(new DefaultHttpContent(Unpooled.copiedBuffer("data: [DONE]\n\n", CharsetUtil.UTF_8)));
                ctx.writeAndFlush(LastHttpContent.EMPTY_LAST_CONTENT);
            };
            task[0] = ctx.executor().scheduleAtFixedRate(tick, 0, Math.max(1, intervalMillis), TimeUnit.MILLISECONDS);
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
                ctx.writeAndFlush(r);
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

    public static void main(String[] args) throws InterruptedException {
        int port = args.length > 0 ? Integer.parseInt(args[0]) : 9000;
        int events = args.length > 1 ? Integer.parseInt(args[1]) : 20;
        long interval = args.length > 2 ? Long.parseLong(args[2]) : 50;
        MockUpstreamServer mock = new MockUpstreamServer(events, interval).start("127.0.0.1", port, 1);
        System.out.println("mock upstream on http://127.0.0.1:" + mock.port() + "/v1 (" + events + " SSE events, "
                + interval + " ms apart); keys sk-bad* get 401, sk-slow* get 429");
        Runtime.getRuntime().addShutdownHook(new Thread(mock::stop));
        Thread.currentThread().join();
    }
}
