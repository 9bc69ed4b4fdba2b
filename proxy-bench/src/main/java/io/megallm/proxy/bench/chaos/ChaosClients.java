package io.megallm.proxy.bench.chaos;

import io.megallm.proxy.bench.MockUpstreamServer;
import io.megallm.proxy.bench.harness.ResponseParser;
import io.megallm.proxy.bench.harness.SseScanner;
import io.megallm.proxy.transport.Transport;
import io.netty.bootstrap.Bootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
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
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;

/**
 * The chaos run's clients: every {@link ChaosPattern} on one Netty event loop (all state lives on
 * that thread, so nothing here is locked). Sessions are started by {@link #tick} at the patterns'
 * rates while fewer than {@code maxOpen} connections are open; every session ends by itself (its
 * answer, the proxy's close, or its hold limit), so a run is bounded whatever the proxy does.
 */
final class ChaosClients implements AutoCloseable {

    /** Settings of the clients; the timeouts are the proxy's, to know when a cut is due. */
    record Settings(int port, double scale, int maxOpen, long holdMillis, long requestTimeoutMillis,
                    long bodyTimeoutMillis, Map<ChaosPattern, Long> cutDueMillis) {
    }

    /** A checked request whose answer was not the right one (judged later, against the mock's record). */
    record BadAnswer(String requestId, ChaosPattern pattern, String kind, int status, long sentNanos, long endNanos,
                     String snippet) {
    }

    /** A tracked client that left (or stopped reading) at {@code atNanos}; its upstream must end soon after. */
    record Left(String requestId, ChaosPattern pattern, long atNanos) {
    }

    private static final byte[] COMPLETION = MockUpstreamServer.COMPLETION.getBytes(StandardCharsets.UTF_8);
    private static final byte[] DONE = "data: [DONE]\n\n".getBytes(StandardCharsets.US_ASCII);
    private static final int MAX_KEPT = 200_000;

    private final Settings s;
    private final Transport transport = Transport.best();
    private final EventLoopGroup group;
    private final EventLoop loop;
    private final InetSocketAddress target;
    private final Map<ChaosPattern, Double> credit = new EnumMap<>(ChaosPattern.class);
    private final Map<ChaosPattern, long[]> started = new EnumMap<>(ChaosPattern.class);
    private final Map<ChaosPattern, Map<String, Long>> outcomes = new EnumMap<>(ChaosPattern.class);
    private final Map<ChaosPattern, List<Double>> cutAfter = new EnumMap<>(ChaosPattern.class);
    private final List<BadAnswer> bad = new ArrayList<>();
    private final List<Left> left = new ArrayList<>();
    private final Set<String> abandoned = new HashSet<>();
    private final Set<Session> sessions = new HashSet<>();
    private long checkedOk;
    private long checkedSent;
    private long skippedByCap;
    private long seq;
    private int open;
    private int peakOpen;
    private long connections;
    private boolean launching = true;

    ChaosClients(Settings settings) {
        this.s = settings;
        this.group = transport.newGroup(1, "chaos-client");
        this.loop = group.next();
        this.target = new InetSocketAddress("127.0.0.1", settings.port());
        for (ChaosPattern p : ChaosPattern.values()) {
            credit.put(p, 0.0);
            started.put(p, new long[1]);
            outcomes.put(p, new TreeMap<>());
            cutAfter.put(p, new ArrayList<>());
        }
    }

    EventLoop loop() {
        return loop;
    }

    /** Starts the sessions due in {@code seconds} more of the run (called on any thread). */
    void tick(double seconds, boolean wellBehavedOnly) {
        loop.execute(() -> {
            if (!launching) {
                return;
            }
            for (ChaosPattern p : ChaosPattern.values()) {
                if (wellBehavedOnly && p != ChaosPattern.CHAT && p != ChaosPattern.STREAM) {
                    continue;
                }
                double c = credit.get(p) + p.perSecond * s.scale() * seconds;
                while (c >= 1) {
                    c -= 1;
                    if (open >= s.maxOpen()) {
                        skippedByCap++;
                        continue;
                    }
                    launch(p);
                }
                credit.put(p, c);
            }
        });
    }

    /** No new sessions; the holding ones are closed now (counted as never cut when the proxy did not). */
    void stopLaunching() {
        loop.execute(() -> {
            launching = false;
            long now = System.nanoTime();
            for (Session x : new ArrayList<>(sessions)) {
                if (x.holding) {
                    // Held past the moment its cut was due: never cut. Else the run's end came first,
                    // and it says nothing about the proxy (not judged).
                    long due = s.cutDueMillis().getOrDefault(x.pattern, 0L);
                    boolean overdue = now - x.cutReference > TimeUnit.MILLISECONDS.toNanos(due);
                    if (!overdue && x.pattern == ChaosPattern.STALLED_READER) {
                        abandoned.add(x.id);
                    }
                    x.giveUp(overdue ? "held_until_run_end" : "ended_by_run_before_due");
                }
            }
        });
    }

    int openOnLoop() {
        return open;
    }

    /** A consistent copy of what the clients saw, taken on the loop. */
    Snapshot snapshot() throws Exception {
        return loop.submit(() -> new Snapshot(copyStarted(), copyOutcomes(), copyCuts(), List.copyOf(bad),
                List.copyOf(left), Set.copyOf(abandoned), checkedSent, checkedOk, skippedByCap, open, peakOpen, connections,
                sessions.size())).get(10, TimeUnit.SECONDS);
    }

    record Snapshot(Map<ChaosPattern, Long> started, Map<ChaosPattern, Map<String, Long>> outcomes,
                    Map<ChaosPattern, List<Double>> cutAfterSeconds, List<BadAnswer> bad, List<Left> left,
                    Set<String> abandoned,
                    long checkedSent, long checkedOk, long skippedByCap, int open, int peakOpen, long connections,
                    int sessions) {
    }

    private Map<ChaosPattern, Long> copyStarted() {
        Map<ChaosPattern, Long> m = new EnumMap<>(ChaosPattern.class);
        started.forEach((k, v) -> m.put(k, v[0]));
        return m;
    }

    private Map<ChaosPattern, Map<String, Long>> copyOutcomes() {
        Map<ChaosPattern, Map<String, Long>> m = new EnumMap<>(ChaosPattern.class);
        outcomes.forEach((k, v) -> m.put(k, new TreeMap<>(v)));
        return m;
    }

    private Map<ChaosPattern, List<Double>> copyCuts() {
        Map<ChaosPattern, List<Double>> m = new EnumMap<>(ChaosPattern.class);
        cutAfter.forEach((k, v) -> m.put(k, List.copyOf(v)));
        return m;
    }

    @Override
    public void close() {
        group.shutdownGracefully(0, 2, TimeUnit.SECONDS).syncUninterruptibly();
    }

    // ---- sessions --------------------------------------------------------------------------

    private void launch(ChaosPattern p) {
        started.get(p)[0]++;
        Session x = new Session(p, ++seq);
        open++;
        connections++;
        peakOpen = Math.max(peakOpen, open);
        sessions.add(x);
        Bootstrap b = new Bootstrap().group(loop).channel(transport.socketChannel())
                .option(ChannelOption.TCP_NODELAY, true)
                .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, 5000)
                .handler(x);
        if (p == ChaosPattern.STALLED_READER) {
            // A small receive window, so the proxy's buffers fill within a second of the stall.
            b.option(ChannelOption.SO_RCVBUF, 4096);
        }
        ChannelFuture f = b.connect(target);
        x.channel = f.channel();
        f.addListener(r -> {
            if (!r.isSuccess()) {
                // A channel that never became active gets no channelInactive.
                x.outcome("connect_error");
                if (p.checked) {
                    checkedSent++;
                    addBad(new BadAnswer(x.requestId(), p, "connect_error", 0, System.nanoTime(), System.nanoTime(),
                            String.valueOf(r.cause())));
                }
                x.closed();
            }
        });
    }

    private void addBad(BadAnswer b) {
        if (bad.size() < MAX_KEPT) {
            bad.add(b);
        }
    }

    private static String request(int port, String id, String body, String extra, boolean chunked) {
        return "POST /v1/chat/completions HTTP/1.1\r\n"
                + "Host: 127.0.0.1:" + port + "\r\n"
                + "Content-Type: application/json\r\n"
                + "Authorization: Bearer sk-chaos-client\r\n"
                + "X-Request-Id: " + id + "\r\n"
                + extra
                + (chunked ? "Transfer-Encoding: chunked\r\n" : "Content-Length: "
                + body.getBytes(StandardCharsets.UTF_8).length + "\r\n")
                + "\r\n"
                + (chunked ? "" : body);
    }

    private static ByteBuf ascii(String s) {
        return Unpooled.wrappedBuffer(s.getBytes(StandardCharsets.UTF_8));
    }

    /** One client connection following one pattern. */
    private final class Session extends ChannelInboundHandlerAdapter implements ResponseParser.Listener {
        final ChaosPattern pattern;
        final long n;
        final long startNanos = System.nanoTime();
        Channel channel;
        ChannelHandlerContext ctx;
        ResponseParser parser;
        boolean holding;
        boolean done;
        boolean gaveUp;
        boolean closedLogged;
        int requestsLeft;
        int reqNo;
        String id;
        long sentNanos;
        long cutReference;
        ScheduledFuture<?> timer;
        ScheduledFuture<?> trickle;
        // Answer being read.
        int status;
        boolean inAnswer;
        int expectedEvents;
        int events;
        final byte[] body = new byte[COMPLETION.length + 1];
        int bodyLen;
        final byte[] tail = new byte[DONE.length];
        long bodyTotal;
        final StringBuilder snippet = new StringBuilder();
        final SseScanner scanner = new SseScanner();

        Session(ChaosPattern pattern, long n) {
            this.pattern = pattern;
            this.n = n;
            this.requestsLeft = pattern == ChaosPattern.CHAT ? 1 + (int) (n % 3) : 1;
        }

        String requestId() {
            if (id == null) {
                id = idFor(0);
            }
            return id;
        }

        private String idFor(int k) {
            boolean tracked = pattern == ChaosPattern.STALLED_READER || pattern == ChaosPattern.VANISH_STREAM
                    || pattern == ChaosPattern.VANISH_WAITING;
            return (tracked ? "t-" : "c-") + pattern.name().toLowerCase() + "-" + n + (k > 0 ? "-" + k : "");
        }

        void outcome(String kind) {
            outcomes.get(pattern).merge(kind, 1L, Long::sum);
        }

        @Override
        public void channelActive(ChannelHandlerContext ctx) {
            this.ctx = ctx;
            parser = new ResponseParser(ctx.alloc(), this);
            long hold = s.holdMillis();
            switch (pattern) {
                case CHAT, IDLE_KEEPALIVE -> sendChat(ctx);
                case STREAM -> {
                    int ev = 5 + (int) (n % 11);
                    startChecked(ctx, ev);
                    ctx.writeAndFlush(ascii(request(s.port(), id, STREAM_BODY, "Accept: text/event-stream\r\n"
                            + "X-Mock-Events: " + ev + "\r\nX-Mock-Interval-Ms: 30\r\n", false)));
                }
                case ONE_BYTE_CHUNKS -> oneByteChunks(ctx);
                case SLOW_HEAD -> {
                    holding = true;
                    cutReference = System.nanoTime();
                    byte[] head = request(s.port(), requestId(), CHAT_BODY, "", false).getBytes(StandardCharsets.UTF_8);
                    int[] at = {0};
                    trickle = loop.scheduleAtFixedRate(() -> {
                        if (at[0] < head.length && channel.isActive()) {
                            channel.writeAndFlush(Unpooled.wrappedBuffer(head, at[0]++, 1));
                        }
                    }, 0, 400, TimeUnit.MILLISECONDS);
                    timer = loop.schedule(() -> giveUp("never_cut"), hold, TimeUnit.MILLISECONDS);
                }
                case SLOW_BODY -> {
                    holding = true;
                    String head = request(s.port(), requestId(), "", "", false).replace("Content-Length: 0",
                            "Content-Length: 4000");
                    ctx.writeAndFlush(ascii(head));
                    long gap = s.bodyTimeoutMillis() + 1000;
                    cutReference = System.nanoTime();
                    trickle = loop.scheduleAtFixedRate(() -> {
                        if (channel.isActive()) {
                            channel.writeAndFlush(ascii("{\"a\":"));
                        }
                    }, 0, gap, TimeUnit.MILLISECONDS);
                    timer = loop.schedule(() -> giveUp("never_cut"), hold, TimeUnit.MILLISECONDS);
                }
                case STALLED_READER -> {
                    id = requestId();
                    ctx.writeAndFlush(ascii(request(s.port(), id, STREAM_BODY, "Accept: text/event-stream\r\n"
                            + "X-Chaos-Faults: off\r\nX-Mock-Events: 3000\r\nX-Mock-Interval-Ms: 20\r\n"
                            + "X-Mock-Pad: 2048\r\n", false)));
                    timer = loop.schedule(() -> giveUp("no_head"), s.requestTimeoutMillis(), TimeUnit.MILLISECONDS);
                }
                case VANISH_STREAM -> {
                    id = requestId();
                    expectedEvents = 1 + (int) (n % 5);
                    ctx.writeAndFlush(ascii(request(s.port(), id, STREAM_BODY, "Accept: text/event-stream\r\n"
                            + "X-Chaos-Faults: off\r\nX-Mock-Events: 200\r\nX-Mock-Interval-Ms: 50\r\n", false)));
                    timer = loop.schedule(() -> giveUp("no_events"), s.requestTimeoutMillis(), TimeUnit.MILLISECONDS);
                }
                case VANISH_WAITING -> {
                    id = requestId();
                    ctx.writeAndFlush(ascii(request(s.port(), id, CHAT_BODY,
                            "X-Chaos-Faults: off\r\nX-Chaos-Stall-Ms: 2900\r\n", false)));
                    long leaveAfter = 100 + ThreadLocalRandom.current().nextLong(500);
                    timer = loop.schedule(() -> leave("left_while_waiting"), leaveAfter, TimeUnit.MILLISECONDS);
                }
                case CONNECT_CLOSE -> {
                    if ((n & 1) == 0) {
                        channel.config().setOption(ChannelOption.SO_LINGER, 0);
                    }
                    outcome("closed");
                    done = true;
                    ctx.close();
                }
            }
        }

        private void startChecked(ChannelHandlerContext ctx, int evs) {
            id = idFor(reqNo++);
            expectedEvents = evs;
            sentNanos = System.nanoTime();
            checkedSent++;
            status = 0;
            inAnswer = true;
            events = 0;
            bodyLen = 0;
            bodyTotal = 0;
            snippet.setLength(0);
            java.util.Arrays.fill(tail, (byte) 0);
            if (timer != null) {
                timer.cancel(false);
            }
            timer = loop.schedule(() -> failChecked("client_timeout"), s.requestTimeoutMillis(), TimeUnit.MILLISECONDS);
        }

        private void sendChat(ChannelHandlerContext ctx) {
            startChecked(ctx, -1);
            ctx.writeAndFlush(ascii(request(s.port(), id, CHAT_BODY, "", false)));
        }

        private void oneByteChunks(ChannelHandlerContext ctx) {
            startChecked(ctx, -1);
            String body = CHAT_BODY.substring(0, CHAT_BODY.length() - 1) + ",\"pad\":\"" + "p".repeat(3000) + "\"}";
            ctx.write(ascii(request(s.port(), id, body, "", true)));
            byte[] bytes = body.getBytes(StandardCharsets.US_ASCII);
            StringBuilder b = new StringBuilder(32 * 6);
            for (int i = 0; i < bytes.length; i++) {
                b.append("1\r\n").append((char) bytes[i]).append("\r\n");
                if (b.length() >= 32 * 6) {
                    ctx.writeAndFlush(ascii(b.toString()));
                    b.setLength(0);
                }
            }
            b.append("0\r\n\r\n");
            ctx.writeAndFlush(ascii(b.toString()));
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            ByteBuf in = (ByteBuf) msg;
            try {
                if (!done) {
                    parser.feed(in);
                }
            } catch (ResponseParser.ParseException e) {
                if (inAnswer) {
                    failChecked("parse_error");
                } else {
                    outcome("unparsable_answer");
                    done = true;
                    ctx.close();
                }
            } finally {
                ReferenceCountUtil.release(in);
            }
        }

        @Override
        public void onHead(int code) {
            status = code;
            switch (pattern) {
                case STALLED_READER -> {
                    if (code == 200) {
                        // Stop reading: from now on the proxy's writes pile up until SEND_TIMEOUT cuts us.
                        channel.config().setAutoRead(false);
                        holding = true;
                        cutReference = System.nanoTime();
                        addLeft(new Left(id, pattern, cutReference));
                        timer.cancel(false);
                        timer = loop.schedule(() -> giveUp("never_cut"), s.holdMillis(), TimeUnit.MILLISECONDS);
                    } else {
                        outcome("status_" + code);
                    }
                }
                case SLOW_HEAD, SLOW_BODY -> outcome("answered_" + code);
                default -> {
                }
            }
        }

        @Override
        public void onBody(ByteBuf buf, int index, int length) {
            if (!inAnswer && pattern != ChaosPattern.VANISH_STREAM) {
                return;
            }
            bodyTotal += length;
            if (snippet.length() < 300) {
                snippet.append(buf.toString(index, Math.min(length, 300), StandardCharsets.UTF_8));
            }
            if (pattern == ChaosPattern.VANISH_STREAM) {
                if (status == 200) {
                    scanner.scan(buf, index, length, t -> events++);
                    if (events >= expectedEvents) {
                        if ((n & 1) == 0) {
                            channel.config().setOption(ChannelOption.SO_LINGER, 0);
                        }
                        leave("left_mid_stream");
                    }
                }
                return;
            }
            if (expectedEvents >= 0) {
                scanner.scan(buf, index, length, t -> events++);
                // Keep the last bytes, to check that the stream ended with data: [DONE].
                int take = Math.min(length, tail.length);
                int keep = tail.length - take;
                System.arraycopy(tail, take, tail, 0, keep);
                buf.getBytes(index + length - take, tail, keep, take);
            } else {
                int take = Math.min(length, body.length - bodyLen);
                buf.getBytes(index, body, bodyLen, take);
                bodyLen += take;
            }
        }

        @Override
        public void onComplete() {
            if (!inAnswer) {
                if (!holding && !done) {
                    // A tracked client got a whole answer before it could leave or stall (e.g. a 503).
                    outcome("answered_" + status + "_before_leaving");
                    done = true;
                    if (timer != null) {
                        timer.cancel(false);
                    }
                    channel.close();
                }
                return;
            }
            inAnswer = false;
            timer.cancel(false);
            String wrong = null;
            if (status != 200) {
                wrong = "status_" + status;
            } else if (expectedEvents >= 0) {
                if (events != expectedEvents) {
                    wrong = "wrong_event_count";
                } else if (!java.util.Arrays.equals(tail, DONE)) {
                    wrong = "no_done_at_end";
                }
            } else if (bodyTotal != COMPLETION.length
                    || !java.util.Arrays.equals(body, 0, bodyLen, COMPLETION, 0, COMPLETION.length)) {
                wrong = "wrong_body";
            }
            if (wrong != null) {
                recordBad(wrong);
                outcome("bad_answer");
                done = true;
                channel.close();
                return;
            }
            checkedOk++;
            if (pattern == ChaosPattern.IDLE_KEEPALIVE) {
                // The answer is right; now the connection idles until the proxy's keep-alive timeout.
                outcome("answered_then_idle");
                holding = true;
                cutReference = System.nanoTime();
                timer = loop.schedule(() -> giveUp("never_cut"), s.holdMillis(), TimeUnit.MILLISECONDS);
                return;
            }
            if (--requestsLeft > 0) {
                sendChat(ctx);
                return;
            }
            outcome("ok");
            done = true;
            channel.close();
        }

        private void recordBad(String kind) {
            addBad(new BadAnswer(id, pattern, kind, status, sentNanos, System.nanoTime(), snippet.toString()));
        }

        private void failChecked(String kind) {
            if (!inAnswer) {
                return;
            }
            inAnswer = false;
            recordBad(kind);
            outcome("bad_answer");
            done = true;
            channel.close();
        }

        /** The client leaves on purpose (a tracked pattern): the upstream must end within 2 s. */
        private void leave(String kind) {
            if (done) {
                return;
            }
            done = true;
            outcome(kind);
            addLeft(new Left(id, pattern, System.nanoTime()));
            if (timer != null) {
                timer.cancel(false);
            }
            channel.close();
        }

        /** The hold limit passed (or the run ended) and the proxy never cut this client. */
        void giveUp(String kind) {
            if (done) {
                return;
            }
            done = true;
            gaveUp = true;
            if (holding) {
                outcome(kind);
            } else if (inAnswer) {
                failChecked("run_ended");
            } else {
                outcome(kind);
            }
            channel.close();
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            if (inAnswer) {
                failChecked(status == 0 ? "no_answer" : "incomplete_body");
            } else if (holding && !gaveUp) {
                // The proxy cut a holding client: when, relative to the moment its timeout began.
                outcome("cut_by_proxy");
                List<Double> l = cutAfter.get(pattern);
                if (l.size() < MAX_KEPT) {
                    l.add((System.nanoTime() - cutReference) / 1e9);
                }
            } else if (!done) {
                outcome(pattern == ChaosPattern.VANISH_STREAM || pattern == ChaosPattern.VANISH_WAITING
                        ? "closed_by_proxy_before_leaving" : "closed_by_proxy");
            }
            done = true;
            closed();
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            // Resets are expected here (the proxy may cut us); channelInactive records the end.
            ctx.close();
        }

        void closed() {
            if (closedLogged) {
                return;
            }
            closedLogged = true;
            if (timer != null) {
                timer.cancel(false);
            }
            if (trickle != null) {
                trickle.cancel(false);
            }
            if (parser != null) {
                parser.release();
                parser = null;
            }
            sessions.remove(this);
            open--;
        }
    }

    /**
     * {@code n} streams at once (8 s each, an event every 500 ms, no faults), held {@code holdMillis};
     * then all are closed. Answers: how many got a head, by status ({@code head_200}, {@code head_503}),
     * and {@code no_head} / {@code connect_error}.
     */
    java.util.concurrent.CompletableFuture<Map<String, Long>> probe(int n, long holdMillis) {
        java.util.concurrent.CompletableFuture<Map<String, Long>> done = new java.util.concurrent.CompletableFuture<>();
        loop.execute(() -> {
            Map<String, Long> counts = new TreeMap<>();
            List<Channel> chans = new ArrayList<>();
            List<int[]> heads = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                int[] head = {0};
                heads.add(head);
                String req = request(s.port(), "c-probe-" + i, STREAM_BODY, "Accept: text/event-stream\r\n"
                        + "X-Chaos-Faults: off\r\nX-Mock-Events: 16\r\nX-Mock-Interval-Ms: 500\r\n", false);
                ChannelFuture f = new Bootstrap().group(loop).channel(transport.socketChannel())
                        .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, 5000)
                        .handler(new ChannelInboundHandlerAdapter() {
                            ResponseParser parser;

                            @Override
                            public void channelActive(ChannelHandlerContext ctx) {
                                parser = new ResponseParser(ctx.alloc(), new ResponseParser.Listener() {
                                    @Override
                                    public void onHead(int status) {
                                        head[0] = status;
                                    }

                                    @Override
                                    public void onBody(ByteBuf buf, int index, int length) {
                                    }

                                    @Override
                                    public void onComplete() {
                                    }
                                });
                                ctx.writeAndFlush(ascii(req));
                            }

                            @Override
                            public void channelRead(ChannelHandlerContext ctx, Object msg) {
                                try {
                                    if (parser != null && head[0] == 0) {
                                        parser.feed((ByteBuf) msg);
                                    }
                                } catch (ResponseParser.ParseException e) {
                                    head[0] = -1;
                                } finally {
                                    ReferenceCountUtil.release(msg);
                                }
                            }

                            @Override
                            public void channelInactive(ChannelHandlerContext ctx) {
                                if (parser != null) {
                                    parser.release();
                                    parser = null;
                                }
                            }

                            @Override
                            public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
                                ctx.close();
                            }
                        }).connect(target);
                chans.add(f.channel());
                f.addListener(r -> {
                    if (!r.isSuccess()) {
                        head[0] = -2;
                    }
                });
            }
            loop.schedule(() -> {
                for (int i = 0; i < n; i++) {
                    int h = heads.get(i)[0];
                    String k = h > 0 ? "head_" + h : h == -2 ? "connect_error" : h == -1 ? "unparsable" : "no_head";
                    counts.merge(k, 1L, Long::sum);
                    chans.get(i).close();
                }
                done.complete(counts);
            }, holdMillis, TimeUnit.MILLISECONDS);
        });
        return done;
    }

    private void addLeft(Left l) {
        if (left.size() < MAX_KEPT) {
            left.add(l);
        }
    }

    static final String CHAT_BODY = io.megallm.proxy.bench.harness.Requests.CHAT_BODY;
    static final String STREAM_BODY = io.megallm.proxy.bench.harness.Requests.STREAM_BODY;
}
