package io.megallm.proxy.bench.keys;

import io.megallm.proxy.bench.MockUpstreamServer;
import io.megallm.proxy.bench.keys.PoolScenario.PoolKey;
import io.megallm.proxy.bench.keys.PoolScenario.Role;
import io.megallm.proxy.transport.Transport;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.util.CharsetUtil;

import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;

/**
 * A mock upstream with a rate limit per key, for the keys bench. Each key of the
 * {@link PoolScenario} has a token bucket; a request over it gets 429 (with {@code Retry-After: 1}
 * or without, per key). Dead keys get 401 always, flapping keys 401 inside the scenario's flap
 * windows, and during the IP-wide burst every key gets 429 whatever its bucket holds. Every answer
 * comes 5-20 ms after the request, as a small JSON body.
 *
 * <p>It runs on one event loop thread, so the buckets and the tallies of the keys are plain fields
 * touched by that thread only; {@link #tallies()} reads them on it.
 */
public final class RateLimitedUpstream implements AutoCloseable {

    private static final String RATE_LIMITED =
            "{\"error\":{\"message\":\"Rate limit reached for requests\",\"type\":\"requests\",\"code\":\"rate_limit_exceeded\"}}";
    private static final String INVALID_KEY =
            "{\"error\":{\"message\":\"Incorrect API key provided\",\"type\":\"invalid_request_error\",\"code\":\"invalid_api_key\"}}";

    /** What the upstream did with one key's requests; seconds are offsets from the start of the load. */
    public record KeyTally(String key, String role, boolean retryAfter, long calls, long ok, long unauthorized,
                           long rateLimited, long burstRateLimited, List<Double> healedAtSeconds) {
    }

    private final PoolScenario scenario;
    private final Map<String, KeyLimiter> limiters = new HashMap<>();
    private volatile long startNanos = Long.MAX_VALUE;
    private EventLoopGroup group;
    private Channel server;

    public RateLimitedUpstream(PoolScenario scenario) {
        this.scenario = scenario;
        for (PoolKey k : scenario.keys()) {
            limiters.put("Bearer " + k.secret(), new KeyLimiter(k));
        }
    }

    public RateLimitedUpstream start() throws InterruptedException {
        Transport transport = Transport.best();
        // One thread: the buckets need no synchronisation, and the mock leaves the other core to the proxy.
        group = transport.newGroup(1, "pool-upstream");
        server = new ServerBootstrap().group(group).channel(transport.serverChannel())
                .childHandler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        ch.pipeline().addLast(new HttpServerCodec(), new HttpObjectAggregator(1 << 20), new Handler());
                    }
                })
                .bind("127.0.0.1", 0).sync().channel();
        return this;
    }

    public int port() {
        return ((InetSocketAddress) server.localAddress()).getPort();
    }

    /** The scenario's clock starts at {@code nanoTime}; before it, every key behaves as at offset 0. */
    public void begin(long nanoTime) {
        startNanos = nanoTime;
    }

    /** Each key's tally, read on the mock's thread so that it is consistent. */
    public List<KeyTally> tallies() {
        try {
            return group.next().submit(() -> {
                List<KeyTally> out = new ArrayList<>();
                for (PoolKey k : scenario.keys()) {
                    out.add(limiters.get("Bearer " + k.secret()).tally());
                }
                return out;
            }).get(10, TimeUnit.SECONDS);
        } catch (Exception e) {
            throw new IllegalStateException("mock tallies", e);
        }
    }

    @Override
    public void close() {
        if (server != null) {
            server.close().syncUninterruptibly();
        }
        if (group != null) {
            group.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        }
    }

    /** One key's bucket and tally. */
    private final class KeyLimiter {
        private final PoolKey key;
        private double tokens;
        private long refilledAt = Long.MIN_VALUE;
        private long calls;
        private long ok;
        private long unauthorized;
        private long rateLimited;
        private long burstRateLimited;
        private boolean lastUnauthorized;
        private final List<Double> healedAt = new ArrayList<>();

        KeyLimiter(PoolKey key) {
            this.key = key;
            this.tokens = scenario.bucketSize();
        }

        /** The status for a request arriving at offset {@code t}; called on the mock's thread. */
        int admit(long now, long t) {
            calls++;
            if (key.role() == Role.DEAD || (key.role() == Role.FLAPPING && scenario.flapDown(t))) {
                unauthorized++;
                lastUnauthorized = true;
                return 401;
            }
            if (scenario.inBurst(t)) {
                burstRateLimited++;
                return 429;
            }
            refill(now);
            if (tokens < 1) {
                rateLimited++;
                return 429;
            }
            tokens -= 1;
            ok++;
            if (lastUnauthorized) {
                // The first success after 401s: the moment the proxy put the key back to work.
                healedAt.add(Math.max(0, t) / 1e9);
                lastUnauthorized = false;
            }
            return 200;
        }

        private void refill(long now) {
            if (refilledAt != Long.MIN_VALUE) {
                tokens = Math.min(scenario.bucketSize(), tokens + (now - refilledAt) * scenario.ratePerKey() / 1e9);
            }
            refilledAt = now;
        }

        KeyTally tally() {
            return new KeyTally(key.label(), key.role().name().toLowerCase(java.util.Locale.ROOT), key.retryAfter(),
                    calls, ok, unauthorized, rateLimited, burstRateLimited, List.copyOf(healedAt));
        }
    }

    private final class Handler extends SimpleChannelInboundHandler<FullHttpRequest> {
        @Override
        protected void channelRead0(ChannelHandlerContext ctx, FullHttpRequest req) {
            boolean keepAlive = HttpUtil.isKeepAlive(req);
            long now = System.nanoTime();
            KeyLimiter limiter = limiters.get(req.headers().get(HttpHeaderNames.AUTHORIZATION, ""));
            FullHttpResponse r;
            if (!req.uri().endsWith("/chat/completions")) {
                r = response(HttpResponseStatus.NOT_FOUND, "{\"error\":{\"message\":\"Unknown path\"}}");
            } else if (limiter == null) {
                r = response(HttpResponseStatus.UNAUTHORIZED, INVALID_KEY);
            } else {
                int status = limiter.admit(now, now - startNanos);
                if (status == 200) {
                    r = response(HttpResponseStatus.OK, MockUpstreamServer.COMPLETION);
                } else if (status == 401) {
                    r = response(HttpResponseStatus.UNAUTHORIZED, INVALID_KEY);
                } else {
                    r = response(HttpResponseStatus.TOO_MANY_REQUESTS, RATE_LIMITED);
                    if (limiter.key.retryAfter()) {
                        // Whole seconds, as the header allows: the bucket has a token again well within one.
                        r.headers().set(HttpHeaderNames.RETRY_AFTER, "1");
                    }
                }
            }
            if (!keepAlive) {
                r.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
            }
            long delay = ThreadLocalRandom.current().nextLong(5, 21);
            ctx.executor().schedule(() -> {
                if (keepAlive) {
                    ctx.writeAndFlush(r, ctx.voidPromise());
                } else {
                    ctx.writeAndFlush(r).addListener(ChannelFutureListener.CLOSE);
                }
            }, delay, TimeUnit.MILLISECONDS);
        }

        private FullHttpResponse response(HttpResponseStatus status, String body) {
            FullHttpResponse r = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, status,
                    Unpooled.copiedBuffer(body, CharsetUtil.UTF_8));
            r.headers().set(HttpHeaderNames.CONTENT_TYPE, HttpHeaderValues.APPLICATION_JSON)
                    .setInt(HttpHeaderNames.CONTENT_LENGTH, r.content().readableBytes());
            return r;
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            ctx.close();
        }
    }
}
