package io.megallm.proxy.bench.harness;

import io.megallm.proxy.transport.Transport;
import io.netty.bootstrap.Bootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoop;
import io.netty.channel.EventLoopGroup;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.ScheduledFuture;

import java.net.InetSocketAddress;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * The harness's own HTTP/1.1 keep-alive load client, on Netty (native epoll where available)
 * with ONE event loop thread, so that all its state lives on that thread and the client costs
 * one core at most. Every run is bounded in time; connections that outlive a run are closed.
 */
public final class LoadClient implements AutoCloseable {

    private final Transport transport;
    private final EventLoopGroup group;
    private final EventLoop loop;

    public LoadClient() {
        this.transport = Transport.best();
        this.group = transport.newGroup(1, "bench-client");
        this.loop = group.next();
    }

    public String transportName() {
        return transport.name();
    }

    EventLoop loop() {
        return loop;
    }

    Bootstrap bootstrap(InetSocketAddress target) {
        return new Bootstrap()
                .group(loop)
                .channel(transport.socketChannel())
                .option(ChannelOption.TCP_NODELAY, true)
                .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, 5000)
                .remoteAddress(target);
    }

    @Override
    public void close() {
        group.shutdownGracefully(0, 2, TimeUnit.SECONDS).syncUninterruptibly();
    }

    // ---- closed loop ------------------------------------------------------------------------

    /** Outcome of one closed- or open-loop run. */
    public record LoadResult(long ok, long errors, double measureSeconds, LatencyRecorder latencies,
                             long connectErrors, long statusErrors, long closedErrors) {
        public double throughput() {
            return ok / measureSeconds;
        }
    }

    /**
     * {@code connections} keep-alive connections, each sending its next request as soon as the
     * previous answer ended. Answers completed within the measurement window are counted and
     * timed (send to last byte); the warm-up before it is not.
     */
    public CompletableFuture<LoadResult> closedLoop(InetSocketAddress target, ByteBuf request, int connections,
                                                    long startNanos, long warmupNanos, long measureNanos) {
        ClosedLoop run = new ClosedLoop(target, request, connections, startNanos + warmupNanos,
                startNanos + warmupNanos + measureNanos, measureNanos);
        loop.execute(run::start);
        return run.done;
    }

    private final class ClosedLoop {
        final InetSocketAddress target;
        final ByteBuf request;
        final int connections;
        final long measureStart;
        final long measureEnd;
        final long measureNanos;
        final LatencyRecorder latencies = new LatencyRecorder();
        final CompletableFuture<LoadResult> done = new CompletableFuture<>();
        final List<Channel> open = new ArrayList<>();
        long ok;
        long statusErrors;
        long connectErrors;
        long closedErrors;
        int reconnectBudget;
        int live;
        boolean finished;

        ClosedLoop(InetSocketAddress target, ByteBuf request, int connections, long measureStart, long measureEnd,
                   long measureNanos) {
            this.target = target;
            this.request = request;
            this.connections = connections;
            this.measureStart = measureStart;
            this.measureEnd = measureEnd;
            this.measureNanos = measureNanos;
            this.reconnectBudget = connections * 4;
        }

        void start() {
            for (int i = 0; i < connections; i++) {
                connect();
            }
            long drainAt = measureEnd + TimeUnit.SECONDS.toNanos(3);
            loop.schedule(this::finish, Math.max(0, drainAt - System.nanoTime()), TimeUnit.NANOSECONDS);
        }

        void connect() {
            live++;
            ChannelFuture f = bootstrap(target).handler(new Conn()).connect();
            open.add(f.channel());
            f.addListener(r -> {
                if (!r.isSuccess()) {
                    // A channel that never became active gets no channelInactive.
                    connectErrors++;
                    live--;
                    if (live == 0) {
                        finish();
                    }
                }
            });
        }

        void closed(Conn c) {
            live--;
            if (!c.retired && !finished) {
                if (c.everActive) {
                    closedErrors++;
                }
                if (System.nanoTime() < measureEnd && reconnectBudget-- > 0) {
                    connect();
                }
            }
            if (live == 0) {
                finish();
            }
        }

        void finish() {
            if (finished) {
                return;
            }
            finished = true;
            for (Channel ch : open) {
                ch.close();
            }
            double seconds = measureNanos / 1e9;
            done.complete(new LoadResult(ok, statusErrors + connectErrors + closedErrors, seconds, latencies,
                    connectErrors, statusErrors, closedErrors));
        }

        final class Conn extends ParsingConnection {
            long sentAt;
            boolean retired;
            boolean everActive;

            @Override
            void active() {
                everActive = true;
                if (System.nanoTime() >= measureEnd || finished) {
                    retired = true;
                    ch.close();
                    return;
                }
                send();
            }

            void send() {
                sentAt = System.nanoTime();
                ch.writeAndFlush(request.duplicate(), ch.voidPromise());
            }

            @Override
            public void onComplete() {
                long now = System.nanoTime();
                if (now >= measureStart && now < measureEnd) {
                    if (status == 200) {
                        ok++;
                        latencies.record(now - sentAt);
                    } else {
                        statusErrors++;
                    }
                }
                if (now < measureEnd && !finished) {
                    send();
                } else {
                    retired = true;
                    ch.close();
                }
            }

            @Override
            public void channelInactive(ChannelHandlerContext ctx) {
                if (parser != null) {
                    parser.release();
                }
                closed(this);
            }

            @Override
            public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
                ctx.close();
            }
        }
    }

    // ---- open loop --------------------------------------------------------------------------

    /**
     * Requests at a fixed rate over a pool of keep-alive connections. Latency counts from the
     * moment a request was due, not from when a connection became free, so queueing in the
     * client (coordinated omission) shows as latency. Requests due inside the measurement
     * window are timed.
     */
    public CompletableFuture<LoadResult> openLoop(InetSocketAddress target, ByteBuf request, int connections,
                                                  double ratePerSecond, long startNanos, long warmupNanos,
                                                  long measureNanos) {
        OpenLoop run = new OpenLoop(target, request, connections, ratePerSecond, startNanos,
                startNanos + warmupNanos, startNanos + warmupNanos + measureNanos, measureNanos);
        loop.execute(run::start);
        return run.done;
    }

    private final class OpenLoop {
        static final int MAX_PENDING = 1 << 20;
        final InetSocketAddress target;
        final ByteBuf request;
        final int connections;
        final double rate;
        final long t0;
        final long measureStart;
        final long measureEnd;
        final long measureNanos;
        final LatencyRecorder latencies = new LatencyRecorder();
        final CompletableFuture<LoadResult> done = new CompletableFuture<>();
        final ArrayDeque<Conn> free = new ArrayDeque<>();
        final long[] pending = new long[MAX_PENDING];
        final List<Channel> open = new ArrayList<>();
        int pendingHead;
        int pendingSize;
        long issued;
        long ok;
        long statusErrors;
        long connectErrors;
        long closedErrors;
        long overflow;
        int busy;
        boolean issuing = true;
        boolean finished;
        ScheduledFuture<?> ticker;

        OpenLoop(InetSocketAddress target, ByteBuf request, int connections, double rate, long t0,
                 long measureStart, long measureEnd, long measureNanos) {
            this.target = target;
            this.request = request;
            this.connections = connections;
            this.rate = rate;
            this.t0 = t0;
            this.measureStart = measureStart;
            this.measureEnd = measureEnd;
            this.measureNanos = measureNanos;
        }

        void start() {
            for (int i = 0; i < connections; i++) {
                ChannelFuture f = bootstrap(target).handler(new Conn()).connect();
                open.add(f.channel());
                f.addListener(r -> {
                    if (!r.isSuccess()) {
                        connectErrors++;
                    }
                });
            }
            ticker = loop.scheduleAtFixedRate(this::tick, Math.max(0, t0 - System.nanoTime()), 200_000,
                    TimeUnit.NANOSECONDS);
            long drainAt = measureEnd + TimeUnit.SECONDS.toNanos(3);
            loop.schedule(this::finish, Math.max(0, drainAt - System.nanoTime()), TimeUnit.NANOSECONDS);
        }

        void tick() {
            if (!issuing) {
                return;
            }
            long now = System.nanoTime();
            long due = (long) ((now - t0) * rate / 1e9) + 1;
            while (issued < due) {
                long intended = t0 + (long) (issued * 1e9 / rate);
                if (intended >= measureEnd) {
                    issuing = false;
                    ticker.cancel(false);
                    maybeFinish();
                    return;
                }
                issued++;
                dispatch(intended);
            }
        }

        void dispatch(long intended) {
            Conn c = free.pollFirst();
            if (c != null) {
                c.send(intended);
                return;
            }
            if (pendingSize == MAX_PENDING) {
                overflow++;
                return;
            }
            pending[(pendingHead + pendingSize) % MAX_PENDING] = intended;
            pendingSize++;
        }

        void completed(Conn c, long now) {
            if (c.intended >= measureStart && c.intended < measureEnd) {
                if (c.status == 200) {
                    ok++;
                    latencies.record(now - c.intended);
                } else {
                    statusErrors++;
                }
            }
            busy--;
            if (pendingSize > 0) {
                long next = pending[pendingHead];
                pendingHead = (pendingHead + 1) % MAX_PENDING;
                pendingSize--;
                c.send(next);
            } else {
                free.addFirst(c);
                maybeFinish();
            }
        }

        void maybeFinish() {
            if (!issuing && busy == 0 && pendingSize == 0) {
                finish();
            }
        }

        void finish() {
            if (finished) {
                return;
            }
            finished = true;
            issuing = false;
            if (ticker != null) {
                ticker.cancel(false);
            }
            for (Channel ch : open) {
                ch.close();
            }
            // What was still due and never answered counts as an error.
            long unanswered = pendingSize + busy;
            done.complete(new LoadResult(ok, statusErrors + connectErrors + closedErrors + overflow + unanswered,
                    measureNanos / 1e9, latencies, connectErrors, statusErrors, closedErrors + overflow + unanswered));
        }

        final class Conn extends ParsingConnection {
            long intended;
            boolean inFlight;

            @Override
            void active() {
                if (!finished) {
                    free.addFirst(this);
                    // Requests queued while this connection was being opened.
                    if (pendingSize > 0) {
                        free.remove(this);
                        long next = pending[pendingHead];
                        pendingHead = (pendingHead + 1) % MAX_PENDING;
                        pendingSize--;
                        send(next);
                    }
                }
            }

            void send(long intendedAt) {
                intended = intendedAt;
                inFlight = true;
                busy++;
                ch.writeAndFlush(request.duplicate(), ch.voidPromise());
            }

            @Override
            public void onComplete() {
                inFlight = false;
                completed(this, System.nanoTime());
            }

            @Override
            public void channelInactive(ChannelHandlerContext ctx) {
                if (parser != null) {
                    parser.release();
                }
                free.remove(this);
                if (!finished) {
                    closedErrors++;
                    if (inFlight) {
                        busy--;
                    }
                }
            }

            @Override
            public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
                ctx.close();
            }
        }
    }

    // ---- streams ------------------------------------------------------------------------------

    /** Counters of a set of SSE streams; read them after the run's future completed. */
    public static final class StreamStats {
        public final LatencyRecorder ttfb = new LatencyRecorder();
        public final LatencyRecorder perEvent = new LatencyRecorder();
        public long opened;
        public long established;
        public long receiving;
        public long completed;
        public long events;
        public long connectErrors;
        public long statusErrors;
        public long closedErrors;
        public long parseErrors;

        public long errors() {
            return connectErrors + statusErrors + closedErrors + parseErrors;
        }
    }

    /**
     * SSE streams over their own connections, opened at up to {@code openPerSecond}. With
     * {@code hold} false each stream is read to its end; with {@code hold} true the streams stay
     * open until {@link StreamSet#closeAll()}.
     */
    public StreamSet streams(InetSocketAddress target, ByteBuf request, int count, int openPerSecond,
                             boolean recordEvents, boolean hold) {
        StreamSet set = new StreamSet(target, request, count, openPerSecond, recordEvents, hold);
        loop.execute(set::start);
        return set;
    }

    /** A running set of streams. */
    public final class StreamSet {
        final InetSocketAddress target;
        final ByteBuf request;
        final int count;
        final int openPerSecond;
        final boolean recordEvents;
        final boolean hold;
        final StreamStats stats = new StreamStats();
        final List<Channel> channels = new ArrayList<>();
        final CompletableFuture<StreamStats> ended = new CompletableFuture<>();
        int toOpen;
        int live;
        boolean closing;
        ScheduledFuture<?> opener;

        StreamSet(InetSocketAddress target, ByteBuf request, int count, int openPerSecond, boolean recordEvents,
                  boolean hold) {
            this.target = target;
            this.request = request;
            this.count = count;
            this.openPerSecond = openPerSecond;
            this.recordEvents = recordEvents;
            this.hold = hold;
            this.toOpen = count;
        }

        void start() {
            opener = loop.scheduleAtFixedRate(this::openSome, 0, 10, TimeUnit.MILLISECONDS);
        }

        void openSome() {
            int batch = Math.max(1, openPerSecond / 100);
            for (int i = 0; i < batch && toOpen > 0 && !closing; i++) {
                toOpen--;
                live++;
                stats.opened++;
                ChannelFuture f = bootstrap(target).handler(new StreamConn()).connect();
                channels.add(f.channel());
                f.addListener(r -> {
                    if (!r.isSuccess()) {
                        stats.connectErrors++;
                        live--;
                        checkEnded();
                    }
                });
            }
            if (toOpen == 0 || closing) {
                opener.cancel(false);
                checkEnded();
            }
        }

        /** Completes when every stream ended (or was closed by {@link #closeAll()}). */
        public CompletableFuture<StreamStats> ended() {
            return ended;
        }

        /** A snapshot read on the client's loop. */
        public StreamStats statsNow() {
            return loop.submit(() -> stats).syncUninterruptibly().getNow();
        }

        public long establishedNow() {
            return loop.submit(() -> stats.established).syncUninterruptibly().getNow();
        }

        public long receivingNow() {
            return loop.submit(() -> stats.receiving).syncUninterruptibly().getNow();
        }

        public long errorsNow() {
            return loop.submit(stats::errors).syncUninterruptibly().getNow();
        }

        /** Closes every stream's connection (the clients "leave"); waits until the closes were issued. */
        public void closeAll() {
            loop.submit(() -> {
                closing = true;
                if (opener != null) {
                    opener.cancel(false);
                }
                for (Channel ch : channels) {
                    ch.close();
                }
                checkEnded();
            }).syncUninterruptibly();
        }

        void checkEnded() {
            if (live == 0 && (toOpen == 0 || closing)) {
                ended.complete(stats);
            }
        }

        final class StreamConn extends ParsingConnection implements SseScanner.Sink {
            final SseScanner scanner = new SseScanner();
            long sentAt;
            long readAt;
            boolean gotEvent;
            boolean complete;

            @Override
            void active() {
                sentAt = System.nanoTime();
                ch.writeAndFlush(request.duplicate(), ch.voidPromise());
            }

            @Override
            public void channelRead(ChannelHandlerContext ctx, Object msg) {
                readAt = System.nanoTime();
                super.channelRead(ctx, msg);
            }

            @Override
            void parseError() {
                stats.parseErrors++;
            }

            @Override
            public void onHead(int status) {
                this.status = status;
                if (status == 200) {
                    stats.established++;
                    stats.ttfb.record(readAt - sentAt);
                } else {
                    stats.statusErrors++;
                }
            }

            @Override
            public void onBody(ByteBuf buf, int index, int length) {
                scanner.scan(buf, index, length, this);
            }

            @Override
            public void onEvent(long sentNanos) {
                stats.events++;
                if (!gotEvent) {
                    gotEvent = true;
                    stats.receiving++;
                }
                if (recordEvents) {
                    stats.perEvent.record(readAt - sentNanos);
                }
            }

            @Override
            public void onComplete() {
                complete = true;
                if (status == 200) {
                    stats.completed++;
                }
                ch.close();
            }

            @Override
            public void channelInactive(ChannelHandlerContext ctx) {
                if (parser != null) {
                    parser.release();
                }
                if (!complete && !closing) {
                    stats.closedErrors++;
                }
                live--;
                checkEnded();
            }

            @Override
            public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
                ctx.close();
            }
        }
    }

    /**
     * A load connection that feeds what it reads to a {@link ResponseParser}; a parse error
     * closes it. Subclasses say what happens when it connects and when an answer ends.
     */
    abstract static class ParsingConnection extends ChannelInboundHandlerAdapter implements ResponseParser.Listener {
        Channel ch;
        ResponseParser parser;
        int status;

        abstract void active();

        void parseError() {
        }

        @Override
        public final void channelActive(ChannelHandlerContext ctx) {
            ch = ctx.channel();
            parser = new ResponseParser(ch.alloc(), this);
            active();
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            try {
                parser.feed((ByteBuf) msg);
            } catch (ResponseParser.ParseException e) {
                parseError();
                ctx.close();
            } finally {
                ReferenceCountUtil.release(msg);
            }
        }

        @Override
        public void onHead(int status) {
            this.status = status;
        }

        @Override
        public void onBody(ByteBuf buf, int index, int length) {
        }
    }
}
