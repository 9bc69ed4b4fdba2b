package io.megallm.proxy.relay;

import io.megallm.proxy.clock.EventClock;
import io.megallm.proxy.http.ClientListener;
import io.megallm.proxy.http.ErrorResponses;
import io.megallm.proxy.http.Exchange;
import io.megallm.proxy.http.InboundRequest;
import io.megallm.proxy.key.ApiKey;
import io.megallm.proxy.key.KeyPool;
import io.megallm.proxy.key.KeyWaiters;
import io.megallm.proxy.upstream.AcquireCallback;
import io.megallm.proxy.usage.UsageScanner;
import io.megallm.proxy.upstream.PendingAcquire;
import io.megallm.proxy.upstream.ProxyAnswers;
import io.megallm.proxy.upstream.UpstreamListener;
import io.megallm.proxy.upstream.UpstreamPool;
import io.megallm.proxy.upstream.BaseUrls;
import io.megallm.proxy.upstream.ConnectFailures;
import io.megallm.proxy.upstream.UpstreamPools;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ConnectTimeoutException;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.proxy.ProxyConnectException;
import io.netty.util.AsciiString;
import io.netty.util.concurrent.ScheduledFuture;

import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;

/**
 * One client request on its way upstream: the state shared by all its attempts (keys tried,
 * retries used, the last failed answer). Until the response head goes to the client, any
 * attempt may be abandoned for another; after it, the relay only streams. Everything runs on
 * the client connection's event loop, which is also the loop of the upstream connection.
 */
final class RelayCall implements UpstreamListener, ClientListener, AcquireCallback, Runnable, KeyWaiters.Callback {

    private enum Phase { WAITING_KEY, ACQUIRING, WAITING_HEAD, BUFFERING, STREAMING, BACKOFF, DONE }

    private enum Failure { NONE, UNREACHABLE, TIMEOUT }

    private static final AsciiString EVENT_STREAM = AsciiString.cached("text/event-stream");
    private static final byte[] AUTHORIZATION = "authorization: ".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] END_OF_HEAD = "\r\n\r\n".getBytes(StandardCharsets.US_ASCII);
    /** Bodies up to this size are copied behind the head and go out in the same buffer. */
    private static final int INLINE_BODY = 16 * 1024;

    private final Relay relay;
    private final Exchange exchange;
    private final InboundRequest request;
    private final KeyPool keys;
    /** The pool of the base URL in use; another URL's after a connection to this one failed. */
    private UpstreamPool pool;
    /** The upstream request head but for the Authorization line and the final blank line. */
    private byte[] upstreamHead;
    /** The part of the client's target after /v1, for the head of another base URL. */
    private final String rest;
    /** Which base URL this request uses, and (bit i) those whose connection failed for it. */
    private int baseUrl;
    private long baseUrlsFailed;
    private final long timeoutNanos;
    private final ApiKey[] tried;
    private final ChannelFutureListener onWritten = this::written;
    private final RelayEvents events;
    private final Relay.KeyAccess access;
    /** Hash of the body's prompt_cache_key (else user), 0 without one: picks the key by rendezvous hashing. */
    private final long affinity;

    private Phase phase = Phase.ACQUIRING;
    private int triedCount;
    /** Keys before this index in {@code tried} may be used again: the request waited for a key since. */
    private int avoidFrom;
    /**
     * Where in {@code tried} the keys begin that were usable when this request's wait began: it
     * did not wait for those, so it does not go back to them after the wait (contract §7: "never
     * back to a key it has already tried except after waiting for it").
     */
    private int returnable;
    /** The failed key this request carries on trial (at most one per request, contract §7), or null. */
    private ApiKey trialKey;
    /**
     * The trial key answered in a way that put it back in rotation (a 5xx): from then on it is an
     * ordinary key of this request, and moves to and from it count like any other.
     */
    private boolean trialPassed;
    /**
     * The request moved away from its trial key: the trial is over for it, and a later move to or
     * from that key (after a wait, say) is an ordinary one that counts.
     */
    private boolean trialLeft;
    /** The trial key answered with a rejection: its answer is not the client's business. */
    private boolean trialFailed;
    private boolean affinityCounted;
    private KeyWaiters.Waiter waiter;
    /** System.nanoTime by which any wait for a key must end (KEY_WAIT counts once per request); 0 before the first. */
    private long waitDeadline;
    private long waitStart;
    /** The wait began in a move to another key: the move counts once a key is found. */
    private boolean waitIsSwitch;
    /**
     * This request took a key on waking from the wait and no key has accepted it since: waiters
     * are woken one per returning key, then one per success, so if it ends without one the turn
     * it holds goes to the next waiter (else that one sleeps beside the free key until KEY_WAIT).
     */
    private boolean holdsTurn;
    private ApiKey key;
    private int switches;
    private int sameKeyRetries;
    private boolean staleRetried;
    /**
     * The next attempt opens a new connection: a kept one died unanswered under this request's
     * send. The other kept connections were opened with it and are as likely cut (an upstream's
     * keep-alive timeout); taking the next of them spent §7's one resend on another dead
     * connection, and a healthy upstream's request ended in 502.
     */
    private boolean freshConnection;
    /** The current attempt's request was written whole: a failure now may have been processed (and billed). */
    private boolean requestSent;
    /**
     * A send got no answer after it went out whole, and the one resend allowed for it (contract
     * §7) is granted: the next attempt that reaches the upstream is the last, whatever it gets.
     */
    private boolean resent;
    /** A key that answered 403, blamed only if another key then accepts the request. */
    private ApiKey forbidden;
    /** The buffered answer goes to the client once read: a second 403. */
    private boolean answerIsFinal;
    private Channel upstream;
    private boolean upstreamReused;
    private boolean upstreamKeepAlive;
    private boolean framedBody;
    private FailoverPolicy.Verdict verdict;
    /** The current base URL's pools when an HTTP proxy forwards its requests, else null. */
    private UpstreamPools forwarding;
    private BufferedAnswer pendingAnswer;
    private BufferedAnswer lastAnswer;
    private Failure lastFailure = Failure.NONE;
    private boolean streaming;
    private boolean paused;
    private long lastActivity;
    private long attemptStart;
    private final SilenceWatch watch;
    private final SilenceWatch.Entry silence = new SilenceWatch.Entry(this);
    private ScheduledFuture<?> backoff;
    /** The connection request in flight; cancelled when the client leaves before it is served. */
    private PendingAcquire acquiring;
    /** Reads the upstream's token counts from a successful answer's bytes as they pass. */
    private UsageScanner usage;

    RelayCall(Relay relay, Exchange exchange, String rest, long affinity) {
        this.relay = relay;
        this.exchange = exchange;
        this.request = exchange.request();
        this.keys = relay.keys();
        this.rest = rest;
        this.watch = relay.silenceWatch(exchange.eventLoop());
        useBaseUrl(Math.max(0, relay.baseUrls().pick(0)));
        this.timeoutNanos = TimeUnit.MILLISECONDS.toNanos(relay.settings().timeoutMillis());
        // The first key, MAX_KEY_RETRIES moves, and the trial key with the free move to and from it.
        this.tried = new ApiKey[relay.settings().maxKeyRetries() + 3];
        this.events = relay.events();
        this.access = relay.access();
        this.affinity = affinity;
    }

    void start() {
        exchange.listen(this);
        if (access.budget() != null) {
            access.budget().onRequest();
        }
        if (queuedBehindWaiters()) {
            return;
        }
        ApiKey first = pick();
        if (first == null) {
            awaitKey(false, false);
            return;
        }
        use(first);
    }

    /**
     * While other requests wait for a key, a new one waits behind them (contract §7: in arrival
     * order) instead of taking the slot or the key that comes free ahead of them; the key that
     * wakes the oldest waiter reaches this one in turn. Not when the wait is full (the request
     * then takes a key if one is free, as without waiters) or when no key will come back by itself.
     */
    private boolean queuedBehindWaiters() {
        KeyWaiters waiters = access.waiters();
        if (waiters == null || waiters.size() == 0 || access.keyWaitNanos() == 0
                || keys.nanosUntilNextUsable() < 0) {
            return false;
        }
        long now = EventClock.nanoTime();
        KeyWaiters.Waiter w = waiters.await(exchange.eventLoop(), access.keyWaitNanos(), this);
        if (w == null) {
            return false;
        }
        waitDeadline = now + access.keyWaitNanos();
        waiting(w, now, false);
        return true;
    }

    /** In the wait from {@code now} (or since an earlier wait of this request began). */
    private void waiting(KeyWaiters.Waiter w, long now, boolean isSwitch) {
        if (waitStart == 0) {
            waitStart = now;
        }
        waiter = w;
        waitIsSwitch = isSwitch;
        phase = Phase.WAITING_KEY;
    }

    /**
     * The key for the next attempt: a failed key whose trial is due comes first (once per
     * request), then the affinity key, else round robin; keys this request tried are avoided
     * unless it waited since.
     */
    private ApiKey pick() {
        if (trialKey == null) {
            ApiKey trial = relay.selector().trial(tried, triedCount);
            if (trial != null) {
                trialKey = trial;
                return trial;
            }
        }
        ApiKey next = relay.selector().next(tried, avoidFrom, triedCount, affinity);
        if (next != null && affinity != 0 && !affinityCounted) {
            affinityCounted = true;
            events.affinity(relay.selector().firstChoice(affinity, next));
        }
        return next;
    }

    /**
     * Orders the keys tried since the last wait so that those a request may not take now (resting,
     * paced, failed) come first, and returns where the others begin.
     */
    private int restingFirst() {
        int at = avoidFrom;
        for (int i = avoidFrom; i < triedCount; i++) {
            if (!keys.takeableNow(tried[i])) {
                ApiKey k = tried[at];
                tried[at++] = tried[i];
                tried[i] = k;
            }
        }
        return at;
    }

    /**
     * The keys this request avoids that a request could take now: what must not end its wait. Not
     * every usable key: one that came back since this request's last look must wake it at once.
     */
    private int usableButAvoided() {
        int n = 0;
        for (int i = avoidFrom; i < triedCount; i++) {
            if (keys.takeableNow(tried[i])) {
                n++;
            }
        }
        return n;
    }

    private void use(ApiKey next) {
        sameKeyRetries = 0;
        staleRetried = false;
        key = next;
        tried[triedCount++] = next;
        attempt();
    }

    /** A move to or from {@code k} is free: it is this request's trial key, still a trial. */
    private boolean freeMove(ApiKey k) {
        return k == trialKey && !trialPassed && !trialLeft;
    }

    /** The key is this request's trial and the trial has not been decided yet. */
    private boolean onTrial() {
        return key != null && key == trialKey && key.state().onTrial();
    }

    private void attempt() {
        if (phase == Phase.DONE) {
            return;
        }
        phase = Phase.ACQUIRING;
        trialFailed = false;
        keys.recordAttempt(key);
        exchange.attempt(key.masked());
        attemptStart = EventClock.nanoTime();
        boolean fresh = freshConnection;
        freshConnection = false;
        acquiring = fresh ? pool.acquireFresh(this) : pool.acquire(this);
    }

    // ---- connection and request -------------------------------------------------------------

    @Override
    public void onAcquired(Channel ch, boolean reused) {
        if (phase != Phase.ACQUIRING) {
            pool.release(ch);
            return;
        }
        upstream = ch;
        upstreamReused = reused;
        requestSent = false;
        UpstreamPools.attach(ch, this, request.method().equals(HttpMethod.HEAD));
        phase = Phase.WAITING_HEAD;
        touch();
        armTimer(timeoutNanos);
        ByteBuf body = request.body();
        int length = body.readableBytes();
        AsciiString authorization = key.authorization();
        boolean inline = length <= INLINE_BODY;
        ByteBuf head = ch.alloc().directBuffer(upstreamHead.length + AUTHORIZATION.length + authorization.length()
                + END_OF_HEAD.length + (inline ? length : 0));
        head.writeBytes(upstreamHead).writeBytes(AUTHORIZATION);
        ByteBufUtil.copy(authorization, head);
        head.writeBytes(END_OF_HEAD);
        if (inline) {
            // One buffer, one write: a small body costs less to copy than a second iovec.
            head.writeBytes(body, body.readerIndex(), length);
            ch.writeAndFlush(head).addListener(onWritten);
        } else {
            ch.write(head, ch.voidPromise());
            ch.writeAndFlush(body.retainedDuplicate()).addListener(onWritten);
        }
        ch.read();
    }

    private void written(ChannelFuture f) {
        if (f.isSuccess()) {
            if (upstream == f.channel()) {
                requestSent = true;
            }
            return;
        }
        if (phase == Phase.WAITING_HEAD && upstream == f.channel()) {
            Channel ch = upstream;
            upstream = null;
            pool.discard(ch);
            failedBeforeAnswer(f.cause());
        }
    }

    @Override
    public void onAcquireFailed(Throwable cause, boolean exhausted) {
        if (phase != Phase.ACQUIRING) {
            return;
        }
        if (exhausted) {
            respondError(HttpResponseStatus.SERVICE_UNAVAILABLE, ErrorResponses.UNAVAILABLE, "upstream_pool_exhausted",
                    "All upstream connections are busy; try again shortly.");
            return;
        }
        RelayEvents.Outcome outcome = cause instanceof ConnectTimeoutException
                ? RelayEvents.Outcome.TIMEOUT : RelayEvents.Outcome.CONNECT_ERROR;
        if (nextBaseUrl(cause)) {
            // Not the key's doing and not a key switch: the same key, through the next base URL.
            // Counted all the same: a dead first URL must show in the attempts, not only in a gauge.
            events.attempt(outcome);
            attempt();
            return;
        }
        lastFailure = outcome == RelayEvents.Outcome.TIMEOUT ? Failure.TIMEOUT : Failure.UNREACHABLE;
        events.attempt(outcome);
        if (EventClock.nanoTime() - exchange.request().startNanos() >= timeoutNanos) {
            // MEGALLM_TIMEOUT has passed and the upstream still cannot be reached. Every retry and
            // every other key goes the same dead way: against a host that drops connections, §7's
            // retries and key moves would hold the client for 16 connect timeouts (32 minutes at
            // the default). The client gets its 504/502 (or the last answer) now.
            giveUp();
            return;
        }
        if (ConnectFailures.permanent(cause)) {
            // An outbound proxy that refuses our credentials or the tunnel, or a certificate that
            // does not check out: every retry and every key (none was sent) meets the same answer.
            // Retried, one request made 13 proxy logins (the egress audit), enough to lock out a
            // directory account.
            giveUp();
            return;
        }
        retrySameKeyOrSwitch();
    }

    /** Points this request at base URL {@code index}: its pool on this loop, its request head. */
    private void useBaseUrl(int index) {
        UpstreamPools urlPools = relay.baseUrls().pools(index);
        baseUrl = index;
        pool = urlPools.forLoop(exchange.eventLoop());
        forwarding = urlPools.forwardsThroughProxy() ? urlPools : null;
        upstreamHead = HeaderRewriter.upstreamHead(request, urlPools.target(), urlPools.requestPrefix(), rest,
                urlPools.proxyAuthorization());
    }

    /**
     * A connection to the current base URL failed, or it gave no response head within
     * MEGALLM_TIMEOUT: pause that URL and move this request to the next one it has not failed on;
     * false when there is none (one URL, or all failed for it).
     */
    private boolean nextBaseUrl(Throwable cause) {
        BaseUrls urls = relay.baseUrls();
        urls.failed(baseUrl, cause);
        if (urls.size() < 2) {
            return false;
        }
        if (baseUrl < 64) {
            baseUrlsFailed |= 1L << baseUrl;
        }
        int next = urls.pick(baseUrlsFailed);
        if (next < 0) {
            return false;
        }
        useBaseUrl(next);
        return true;
    }

    // ---- upstream events ----------------------------------------------------------------------

    @Override
    public boolean onResponseHead(HttpResponse head, boolean chunked) {
        if (phase != Phase.WAITING_HEAD) {
            return false;
        }
        touch();
        int code = head.status().code();
        if (forwarding != null && (code == 407 || ProxyAnswers.cannotConnect(head))) {
            proxyRefused(head);
            return false;
        }
        relay.baseUrls().succeeded(baseUrl);
        upstreamKeepAlive = HttpUtil.isKeepAlive(head);
        verdict = FailoverPolicy.classify(code);
        events.upstreamHead(EventClock.nanoTime() - attemptStart);
        events.attempt(outcomeOf(code));
        if (verdict == FailoverPolicy.Verdict.RELAY) {
            if (forbidden != null) {
                if (code < 400) {
                    // Another key accepted what the 403 key refused: the refusal was the key's.
                    keys.markFailed(forbidden, 403);
                }
                // A 4xx from the other key is no acceptance: the request is at fault as likely as
                // the key (a model only some tiers have), and a client must not bench keys with it.
                forbidden = null;
            }
            if (code >= 400) {
                holdFinalAnswer(head);
                return false;
            }
            commit(head, chunked);
            return framedBody;
        }
        judgeKey(head, code);
        if (resent) {
            // The answer to the one resend §7 allows after a send that got none. The first send
            // may have been processed and billed; a 5xx or a rejection now does not make a third
            // send acceptable. The client gets this answer (or our error if it cannot be kept).
            answerIsFinal = true;
        }
        pendingAnswer = new BufferedAnswer(head, exchange.alloc());
        phase = Phase.BUFFERING;
        return false;
    }

    /**
     * A forwarding HTTP proxy refused our credentials, or said it could not reach the upstream:
     * the same failure as a CONNECT proxy's 407 or 503 (ConnectFailures: the 407 is permanent, the
     * 503 a connect failure that moves to the next base URL). The key is not blamed and the
     * proxy's answer is not the client's; the connection goes, whatever follows on it.
     */
    private void proxyRefused(HttpResponse head) {
        cancelTimer();
        Channel ch = upstream;
        upstream = null;
        pool.discard(ch);
        phase = Phase.ACQUIRING;
        onAcquireFailed(new ProxyConnectException("http, forward, " + forwarding.forwardingProxy() + " => "
                + forwarding.target() + ", status: " + head.status()), false);
    }

    private static RelayEvents.Outcome outcomeOf(int code) {
        return switch (code) {
            case 401 -> RelayEvents.Outcome.STATUS_401;
            case 402 -> RelayEvents.Outcome.STATUS_402;
            case 403 -> RelayEvents.Outcome.STATUS_403;
            case 429 -> RelayEvents.Outcome.STATUS_429;
            default -> code >= 500 ? RelayEvents.Outcome.STATUS_5XX : RelayEvents.Outcome.OK;
        };
    }

    private void judgeKey(HttpResponse head, int code) {
        if (onTrial() && verdict != FailoverPolicy.Verdict.TRANSIENT) {
            // A failed key on trial that refuses again (a 403 included: it was failed already) stays
            // failed with a doubled wait. The request moves on as if the trial had not been.
            trialFailed = true;
            if (verdict == FailoverPolicy.Verdict.KEY_COOLING) {
                keys.limited(key, code, -1);
            } else {
                keys.markFailed(key, code);
            }
            return;
        }
        switch (verdict) {
            case KEY_FAILED -> keys.markFailed(key, code);
            case KEY_FORBIDDEN -> {
                keys.recordTransient(key, code);
                if (forbidden == null) {
                    forbidden = key;
                } else {
                    // Two keys refuse it: the request is what is forbidden. It goes to the client,
                    // and neither key is blamed.
                    forbidden = null;
                    answerIsFinal = true;
                }
            }
            case KEY_COOLING -> {
                // -1 (no Retry-After): the adaptive rest, 1 s doubled per consecutive 429 up to KEY_COOLDOWN.
                keys.limited(key, code, RetryAfter.seconds(head.headers().get(HttpHeaderNames.RETRY_AFTER),
                        System.currentTimeMillis()));
            }
            default -> {
                boolean trial = onTrial();
                keys.recordTransient(key, code);
                if (trial) {
                    // A 5xx returns a key on trial to rotation: it is no trial of this request any more.
                    trialPassed = true;
                }
            }
        }
    }

    /**
     * An error answer that goes to the client as it is (a 400, 404, 422…) is read whole and sent
     * with the request's keys masked, as a rejection is: upstreams echo the key they were sent in
     * their errors too (contract §4, §9: no response carries a key). Error bodies are small; one
     * past {@link BufferedAnswer#MAX_BODY} gets its status in the error shape. Only statuses of
     * 400 and above are held: a success is relayed as it comes.
     */
    private void holdFinalAnswer(HttpResponse head) {
        // What an earlier key answered is not what the client gets now, even if this body is cut.
        keyAccepted(head.status().code());
        lastFailure = Failure.NONE;
        answerIsFinal = true;
        pendingAnswer = new BufferedAnswer(head, exchange.alloc());
        phase = Phase.BUFFERING;
    }

    /** The key took the request (the answer is the client's, not a reason to move on); earlier answers go. */
    private void keyAccepted(int status) {
        holdsTurn = false;
        keys.recordSuccess(key, status);
        KeyWaiters waiting = relay.access().waiters();
        if (waiting != null) {
            // The next waiter may try (waiters are woken one per success).
            waiting.served();
        }
        releaseAnswers();
    }

    /** {@code upstreamChunked}: the upstream's body comes in chunks (not by length or until its close). */
    private void commit(HttpResponse head, boolean upstreamChunked) {
        phase = Phase.STREAMING;
        keyAccepted(head.status().code());
        HttpHeaders h = head.headers();
        HeaderRewriter.stripResponse(h);
        String type = h.get(HttpHeaderNames.CONTENT_TYPE);
        if (type != null && AsciiString.regionMatches(type, true, 0, EVENT_STREAM, 0, EVENT_STREAM.length())) {
            h.set(HeaderRewriter.X_ACCEL_BUFFERING, HeaderRewriter.NO);
            streaming = true;
            relay.lifecycle().streamStarted();
        }
        if (!HttpUtil.isContentLengthSet(head) && !HttpUtil.isTransferEncodingChunked(head) && bodyAllowed(head)) {
            // The upstream ends the body by closing; the client gets chunks so its connection survives.
            HttpUtil.setTransferEncodingChunked(head, true);
        }
        // The upstream's chunks go to the client as they are when the client gets chunks too. A
        // body that ends with the upstream's close has no framing of its own: the exchange frames it.
        framedBody = exchange.sendHead(head) && upstreamChunked;
        int status = head.status().code();
        if (status >= 200 && status < 300 && bodyAllowed(head)) {
            // A body passed on with the upstream's chunk lines is read through them.
            usage = new UsageScanner(framedBody);
        }
    }

    private boolean bodyAllowed(HttpResponse head) {
        int code = head.status().code();
        return !request.method().equals(HttpMethod.HEAD) && code != 204 && code != 304 && code >= 200;
    }

    @Override
    public void onBody(ByteBuf bytes) {
        touch();
        switch (phase) {
            case STREAMING -> {
                if (usage != null) {
                    usage.scan(bytes);
                }
                exchange.sendBody(bytes, framedBody);
            }
            case BUFFERING -> {
                boolean kept = pendingAnswer.append(bytes);
                bytes.release();
                if (!kept) {
                    // Too big to keep: the body is dropped and the attempt ends here. The status
                    // still counts as the last answer the upstream gave.
                    pendingAnswer.dropBody();
                    Channel ch = upstream;
                    upstream = null;
                    pool.discard(ch);
                    keepFailedAnswer();
                    afterFailedAnswer();
                }
            }
            default -> bytes.release();
        }
    }

    @Override
    public void onResponseEnd(HttpHeaders trailers) {
        touch();
        switch (phase) {
            case STREAMING -> {
                finishUpstream();
                events.upstreamDone(EventClock.nanoTime() - attemptStart);
                recordUsage();
                exchange.sendEnd(trailers);
                done();
            }
            case BUFFERING -> {
                finishUpstream();
                keepFailedAnswer();
                afterFailedAnswer();
            }
            default -> { }
        }
    }

    /** The failed answer just read becomes the last answer, the one the client gets if nothing follows. */
    private void keepFailedAnswer() {
        if (trialFailed) {
            // A trial's failure is invisible to the client: its answer is never relayed.
            trialFailed = false;
            pendingAnswer.release();
        } else {
            if (lastAnswer != null) {
                lastAnswer.release();
            }
            lastAnswer = pendingAnswer;
        }
        pendingAnswer = null;
    }

    @Override
    public void onReadComplete() {
        Channel ch = upstream;
        if (ch == null) {
            return;
        }
        if (phase == Phase.STREAMING) {
            exchange.flush();
            // Read on only while the client keeps up; otherwise wait for its buffer to drain.
            if (exchange.isWritable()) {
                ch.read();
            } else {
                paused = true;
            }
        } else if (phase == Phase.WAITING_HEAD || phase == Phase.BUFFERING) {
            ch.read();
        }
    }

    @Override
    public void onClientWritable() {
        if (paused && phase == Phase.STREAMING && upstream != null) {
            paused = false;
            touch();
            upstream.read();
        }
    }

    @Override
    public void onUpstreamClosed(Throwable cause) {
        Channel ch = upstream;
        upstream = null;
        if (ch == null) {
            return;
        }
        pool.discard(ch);
        switch (phase) {
            case WAITING_HEAD -> failedBeforeAnswer(cause);
            case BUFFERING -> {
                // An incomplete error answer is worth nothing to the client.
                pendingAnswer.release();
                pendingAnswer = null;
                afterFailedAnswer();
            }
            case STREAMING -> {
                events.truncated();
                recordUsage();
                exchange.abort();
                done();
            }
            default -> { }
        }
    }

    private void failedBeforeAnswer(Throwable cause) {
        cancelTimer();
        if (requestSent) {
            freshConnection = upstreamReused;
            noAnswerAfterSending(Failure.UNREACHABLE, RelayEvents.Outcome.CONNECT_ERROR);
            return;
        }
        if (upstreamReused && !staleRetried) {
            // A pooled connection the server had already closed: not the key's fault, not a retry.
            staleRetried = true;
            phase = Phase.ACQUIRING;
            acquiring = pool.acquireFresh(this);
            return;
        }
        lastFailure = Failure.UNREACHABLE;
        events.attempt(RelayEvents.Outcome.CONNECT_ERROR);
        retrySameKeyOrSwitch();
    }

    // ---- client events ------------------------------------------------------------------------

    @Override
    public void onClientGone() {
        if (phase == Phase.DONE) {
            return;
        }
        Channel ch = upstream;
        upstream = null;
        if (ch != null) {
            // Stop the generation now; a half-read response must never go back to the pool.
            pool.discard(ch);
        }
        if (phase == Phase.ACQUIRING && acquiring != null) {
            // Out of the wait queue: a request nobody waits for is never sent (nor billed).
            acquiring.cancel();
        }
        if (phase == Phase.ACQUIRING || phase == Phase.WAITING_HEAD || phase == Phase.BACKOFF) {
            events.attempt(RelayEvents.Outcome.CLIENT_CANCELLED);
        }
        if (phase == Phase.WAITING_KEY) {
            // Out of the wait at once; nothing of this request was sent.
            events.keyWait(RelayEvents.KeyWait.CLIENT_GONE, EventClock.nanoTime() - waitStart);
        }
        done();
    }

    // ---- timeouts -----------------------------------------------------------------------------

    private void touch() {
        lastActivity = EventClock.nanoTime();
    }

    private void armTimer(long delayNanos) {
        watch.arm(silence, delayNanos);
    }

    private void cancelTimer() {
        watch.disarm(silence);
    }

    /** The silence check: one timer per attempt, re-armed for the remaining time instead of per chunk. */
    @Override
    public void run() {
        if (phase != Phase.WAITING_HEAD && phase != Phase.BUFFERING && phase != Phase.STREAMING) {
            return;
        }
        long silent = EventClock.nanoTime() - lastActivity;
        if (paused || silent < timeoutNanos) {
            armTimer(paused ? timeoutNanos : timeoutNanos - silent);
            return;
        }
        Channel ch = upstream;
        upstream = null;
        if (ch != null) {
            pool.discard(ch);
        }
        switch (phase) {
            case WAITING_HEAD -> {
                // A URL that takes connections and never answers is as down as one that refuses
                // them (§15): paused, and whatever is sent next goes to the next URL.
                nextBaseUrl(null);
                if (requestSent) {
                    noAnswerAfterSending(Failure.TIMEOUT, RelayEvents.Outcome.TIMEOUT);
                    return;
                }
                lastFailure = Failure.TIMEOUT;
                events.attempt(RelayEvents.Outcome.TIMEOUT);
                retrySameKeyOrSwitch();
            }
            case BUFFERING -> {
                pendingAnswer.release();
                pendingAnswer = null;
                // The upstream answered, then went silent: a timeout (504 if nothing else answers),
                // not "could not be reached".
                lastFailure = Failure.TIMEOUT;
                afterFailedAnswer();
            }
            default -> {
                events.truncated();
                recordUsage();
                exchange.abort();
                done();
            }
        }
    }

    // ---- failover -----------------------------------------------------------------------------

    /**
     * The request went out whole and no answer came (timeout before headers, reset, malformed
     * answer): the upstream may have processed and billed it, so it is sent once more at most, in
     * all, whatever the retry settings. The key is not blamed.
     */
    private void noAnswerAfterSending(Failure failure, RelayEvents.Outcome outcome) {
        cancelTimer();
        lastFailure = failure;
        events.attempt(outcome);
        if (resent) {
            giveUp();
            return;
        }
        resent = true;
        retrySameKeyOrSwitch();
    }

    private void afterFailedAnswer() {
        if (answerIsFinal) {
            giveUp();
            return;
        }
        if (verdict == FailoverPolicy.Verdict.TRANSIENT) {
            retrySameKeyOrSwitch();
        } else {
            switchKey();
        }
    }

    private void retrySameKeyOrSwitch() {
        cancelTimer();
        boolean trial = onTrial();
        if (trial) {
            // No answer from the key on trial says nothing about it: the trial goes back for another
            // request to claim.
            keys.recordTransient(key, 0);
        } else {
            // A probe that got no answer: the next request may probe the key now (README, Probation).
            keys.recordUnanswered(key);
        }
        if (access.budget() != null && !access.budget().tryRetry()) {
            // Over the retry budget: the failure goes to the client now, so that a failing upstream
            // never gets a multiple of the offered load (contract §7). A trial's resend too: the
            // upstream gets it all the same, and after no answer it is §7's once-more.
            events.retryRefused();
            giveUp();
            return;
        }
        if (trial) {
            // Not a key switch that counts: the client never saw the trial.
            lastFailure = Failure.NONE;
            switchKey();
            return;
        }
        if (sameKeyRetries < relay.settings().maxRetries()) {
            sameKeyRetries++;
            events.retry();
            phase = Phase.BACKOFF;
            staleRetried = false;
            backoff = exchange.eventLoop().schedule(this::attempt, FailoverPolicy.backoffMillis(sameKeyRetries),
                    TimeUnit.MILLISECONDS);
            return;
        }
        switchKey();
    }

    private void switchKey() {
        cancelTimer();
        // A move to or from the trial key is free: the trial is an extra attempt the client never sees.
        boolean counts = !freeMove(key);
        if (key == trialKey) {
            trialLeft = true;
        }
        if (counts && switches >= relay.settings().maxKeyRetries()) {
            giveUp();
            return;
        }
        ApiKey next = pick();
        if (next == null) {
            awaitKey(counts, false);
            return;
        }
        if (counts && !freeMove(next)) {
            switches++;
            events.keySwitch();
        }
        use(next);
    }

    // ---- waiting for a key (KEY_WAIT) -------------------------------------------------------------

    /**
     * No key to use: wait when a resting key returns, or a paced key has its next slot, within what
     * is left of KEY_WAIT, else the request is out of keys. {@code isSwitch}: the wait is part of a move that counts;
     * {@code keepPlace}: the request was woken from the front of the queue and goes back there.
     */
    private void awaitKey(boolean isSwitch, boolean keepPlace) {
        KeyWaiters waiters = access.waiters();
        long now = EventClock.nanoTime();
        if (waitDeadline == 0) {
            waitDeadline = now + access.keyWaitNanos();
        }
        long left = waitDeadline - now;
        long untilUsable = keys.nanosUntilRestEnds();
        if (waiters == null || access.keyWaitNanos() == 0 || untilUsable < 0 || untilUsable > left) {
            if (waitStart != 0) {
                events.keyWait(RelayEvents.KeyWait.TIMED_OUT, now - waitStart);
                outOfKeys();
                return;
            }
            // No wait for this request: a key that is only paced out (KeyPacer) may still accept it,
            // which beats a 503 of our own.
            ApiKey unpaced = relay.selector().next(tried, avoidFrom, triedCount, affinity, false);
            if (unpaced == null) {
                outOfKeys();
                return;
            }
            if (isSwitch && !freeMove(unpaced)) {
                switches++;
                events.keySwitch();
            }
            use(unpaced);
            return;
        }
        if (waitStart == 0) {
            returnable = restingFirst();
        }
        int avoided = usableButAvoided();
        KeyWaiters.Waiter w = waiters.await(exchange.eventLoop(), left, this, keepPlace, avoided);
        if (w == null) {
            events.keyWait(RelayEvents.KeyWait.FULL, 0);
            outOfKeys();
            return;
        }
        if (keepPlace && avoided > 0) {
            // Woken for a key this request may not take (it tried it): another waiter may.
            waiters.wakeBehind(w);
        } else if (holdsTurn && avoided > 0) {
            // It took its turn on a key, failed there and waits again (at the end) beside that key,
            // which it may not take again: the turn goes to the next waiter.
            waiters.wake(1);
        }
        holdsTurn = false;
        waiting(w, now, isSwitch);
    }

    /** From the waiters, on this request's loop: a key may be usable now. */
    @Override
    public void keyMayBeUsable() {
        if (phase != Phase.WAITING_KEY) {
            // Woken, but the client left before the wake-up ran (cancel() came too late to stop
            // it): waiters are woken one per returning key, so this one's turn goes to the next.
            KeyWaiters waiters = access.waiters();
            if (waiters != null) {
                waiters.wake(1);
            }
            return;
        }
        waiter = null;
        // Woken, it holds the turn of a key that came back: if it neither takes a key nor waits on
        // (nothing left to wait for), done() hands the turn to the next waiter.
        holdsTurn = true;
        if (!takeKeyAfterWait()) {
            // Another request was quicker, or the key rested again: wait on for what is left, in front.
            awaitKey(waitIsSwitch, true);
        }
    }

    /**
     * Having waited, the request may go back to a key it tried before (contract §7): to the ones
     * it waited for, not to those it could have taken again without waiting. False when there is
     * none to take now.
     */
    private boolean takeKeyAfterWait() {
        avoidFrom = returnable;
        ApiKey next = pick();
        if (next == null) {
            return false;
        }
        events.keyWait(RelayEvents.KeyWait.SERVED, EventClock.nanoTime() - waitStart);
        holdsTurn = true;
        // A later wait is a wait of its own (it shares what is left of KEY_WAIT).
        waitStart = 0;
        if (waitIsSwitch && !freeMove(next)) {
            switches++;
            events.keySwitch();
        }
        use(next);
        return true;
    }

    /** From the waiters, on this request's loop: KEY_WAIT is over and no key came back. */
    @Override
    public void waitOver() {
        if (phase != Phase.WAITING_KEY) {
            return;
        }
        waiter = null;
        // Waiters are woken one per returning key and then one per accepted request: behind a
        // slow answer a key may have stood free for most of this wait. It came back within
        // KEY_WAIT, so the request goes on with it (contract §7) instead of a 503 saying none is.
        if (takeKeyAfterWait()) {
            return;
        }
        events.keyWait(RelayEvents.KeyWait.TIMED_OUT, EventClock.nanoTime() - waitStart);
        outOfKeys();
    }

    /** No key to move to: 503 when no key has answered this request yet, else what the keys said. */
    private void outOfKeys() {
        if (lastAnswer == null && lastFailure == Failure.NONE) {
            noKeyAvailable();
        } else {
            giveUp();
        }
    }

    /** Out of moves: the last upstream answer as it was, or an error of our own if there was none. */
    private void giveUp() {
        if (lastAnswer != null) {
            FullHttpResponse answer = lastAnswer.bodyDropped() ? lastAnswer.toErrorResponse()
                    : lastAnswer.toResponse(tried, triedCount);
            lastAnswer = null;
            exchange.respond(answer);
            done();
            return;
        }
        // Our own 502/504 comes after our own retries (or the retry budget said no): an SDK that
        // retried it too would send every failing request three times again, and a 504's up to
        // twice more to an upstream that may have billed it (§7: once more at most, in all).
        FullHttpResponse response = lastFailure == Failure.TIMEOUT
                ? ErrorResponses.error(exchange.alloc(), HttpResponseStatus.GATEWAY_TIMEOUT, ErrorResponses.SERVER,
                        "upstream_timeout", "The upstream did not answer in time.")
                : ErrorResponses.error(exchange.alloc(), HttpResponseStatus.BAD_GATEWAY, ErrorResponses.SERVER,
                        "upstream_unreachable", "The upstream could not be reached.");
        ErrorResponses.noRetry(response);
        exchange.respond(response);
        done();
    }

    private void noKeyAvailable() {
        long retryAfter = keys.secondsUntilNextAvailable();
        FullHttpResponse response = ErrorResponses.error(exchange.alloc(), HttpResponseStatus.SERVICE_UNAVAILABLE,
                ErrorResponses.UNAVAILABLE, "no_available_keys",
                "No upstream key is available right now.");
        if (retryAfter >= 0) {
            ErrorResponses.retryAfter(response, retryAfter);
        } else {
            // Every key has failed: none comes back by itself within an SDK's retries (seconds).
            ErrorResponses.noRetry(response);
        }
        exchange.respond(response);
        done();
    }

    private void respondError(HttpResponseStatus status, String type, String code, String message) {
        exchange.respondError(status, type, code, message);
        done();
    }

    private void finishUpstream() {
        cancelTimer();
        Channel ch = upstream;
        upstream = null;
        if (upstreamKeepAlive) {
            pool.release(ch);
        } else {
            pool.discard(ch);
        }
    }

    private void releaseAnswers() {
        if (pendingAnswer != null) {
            pendingAnswer.release();
            pendingAnswer = null;
        }
        if (lastAnswer != null) {
            lastAnswer.release();
            lastAnswer = null;
        }
    }

    /**
     * What the upstream said the answer cost, however the answer ended (a cut stream's last
     * usage, if any, is still what was generated); counted once, before the exchange reports.
     */
    private void recordUsage() {
        UsageScanner u = usage;
        usage = null;
        if (u != null) {
            exchange.documents(u.documents());
        }
        if (u != null && u.found()) {
            key.addTokens(u.promptTokens(), u.completionTokens(), u.cachedTokens());
            exchange.usage(u.promptTokens(), u.completionTokens(), u.cachedTokens());
        } else if (u != null) {
            exchange.usageMissing(u.documents());
        }
    }

    private void done() {
        if (phase == Phase.DONE) {
            return;
        }
        recordUsage();
        phase = Phase.DONE;
        cancelTimer();
        if (waiter != null) {
            waiter.cancel();
            waiter = null;
        }
        if (holdsTurn) {
            holdsTurn = false;
            KeyWaiters waiters = access.waiters();
            if (waiters != null) {
                waiters.served();
            }
        }
        if (onTrial()) {
            // The request ended before the trial key answered (client gone, upstream pool full):
            // the trial is handed back, undecided.
            keys.lifecycle().abandonTrial(key);
        }
        if (backoff != null) {
            backoff.cancel(false);
            backoff = null;
        }
        releaseAnswers();
        if (streaming) {
            streaming = false;
            relay.lifecycle().streamEnded();
        }
    }
}
