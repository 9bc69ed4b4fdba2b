package io.megallm.proxy.server.clients;

import io.megallm.proxy.server.shared.SharedCounters;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;

/**
 * A client of the proxy with its limits and what it has used (contract §13). Every check and
 * count is a few atomic operations: no lock on the request path. Token limits are checked when a
 * request starts against the tokens already counted plus what the answers in flight are expected
 * to add (their number times the size of a recent answer), so that parallel requests overshoot a
 * limit by about one answer, not one answer each; before any answer has ended the expectation is
 * 0 and the first burst goes through (the "once" of the contract).
 */
public final class Client {

    /** Why a request is refused, for a 429 (or 403) in the error shape. */
    public record Refusal(int status, String code, String message, long retryAfterSeconds) {
    }

    private static final long DAY_SECONDS = 86_400;
    private static final int TOKEN_BITS = 44;
    private static final long TOKEN_MASK = (1L << TOKEN_BITS) - 1;

    private volatile ClientSpec spec;
    private final SlidingWindow requestWindow = new SlidingWindow();
    private final SlidingWindow tokenWindow = new SlidingWindow();
    /** The UTC day (high bits) and the tokens counted on it (low 44 bits). */
    private final AtomicLong today = new AtomicLong();
    private final AtomicInteger streams = new AtomicInteger();
    /** Requests admitted whole (head and body) whose exchange has not ended. */
    private final AtomicInteger inFlight = new AtomicInteger();
    /** Tokens one answer is expected to bring: a maximum of the recent answers that decays (0: none seen). */
    private final AtomicLong perAnswer = new AtomicLong();
    private final LongAdder requests = new LongAdder();
    private final LongAdder promptTokens = new LongAdder();
    private final LongAdder completionTokens = new LongAdder();
    private final LongAdder cachedTokens = new LongAdder();
    /** Counters shared with the other instances (REDIS_URL), or null: this instance counts alone. */
    private volatile SharedCounters shared;
    /** What names this client in shared counters: a SHA-256 of its key, never the key. */
    private final String id;

    Client(ClientSpec spec) {
        this.spec = spec;
        this.id = sha256(spec.key());
    }

    /** SHA-256 of the client key in hex: what names this client in Redis (never the key). */
    public String id() {
        return id;
    }

    /**
     * From now on the limit windows are counted over every instance sharing {@code counters}. The
     * token windows of a client with token limits are named at once, so that they are read from
     * Redis before its first request here: unread, they count as 0, and a client over its
     * daily_tokens on another instance got a whole burst through on one started later.
     */
    void share(SharedCounters counters) {
        this.shared = counters;
        ClientSpec spec = this.spec;
        long nowSecond = Math.floorDiv(System.currentTimeMillis(), 1000L);
        if (spec.dailyTokens() > 0) {
            counters.total(name("day", Math.floorDiv(nowSecond, DAY_SECONDS)), DAY_TTL_MILLIS);
        }
        if (spec.tpm() > 0) {
            long minute = Math.floorDiv(nowSecond, 60);
            counters.total(name("tpm", minute - 1), WINDOW_TTL_MILLIS);
            counters.total(name("tpm", minute), WINDOW_TTL_MILLIS);
        }
    }

    public ClientSpec spec() {
        return spec;
    }

    /** New limits for the same key (a reload); what was used so far stays. */
    void update(ClientSpec next) {
        this.spec = next;
    }

    public String label() {
        return spec.label();
    }

    /**
     * Checks every limit for a request starting at {@code nowSecond} (epoch seconds, UTC) naming
     * {@code model} (null: none); null when it may go on. Both halves in one call.
     */
    public Refusal admit(long nowSecond, String model, boolean stream) {
        Refusal r = admitRequest(nowSecond);
        return r != null ? r : admitBody(nowSecond, model, stream);
    }

    /**
     * The limits known from the request head (tokens per day and minute, requests per minute),
     * checked before any body byte is read; a request admitted here counts against {@code rpm}.
     */
    public Refusal admitRequest(long nowSecond) {
        ClientSpec spec = this.spec;
        SharedCounters counters = shared;
        if (counters != null) {
            return admitShared(counters, spec, nowSecond);
        }
        // Only a look: the answers in flight are reserved for when the body is admitted.
        Refusal tokens = tokenRefusal(spec, null, nowSecond, reserved(inFlight.get()));
        if (tokens != null) {
            // One limit is named, but Retry-After is the wait for every one that refuses: a client
            // told the tpm's few seconds came back to an rpm refusal.
            return spec.rpm() > 0 && requestWindow.sum(nowSecond) >= spec.rpm()
                    ? later(tokens, rpmRefusal(spec, requestWindow.secondsUntilAtMost(nowSecond, spec.rpm() - 1)))
                    : tokens;
        }
        if (spec.rpm() > 0) {
            // Count first, then check: two racing requests can both be refused, never both let through.
            requestWindow.add(nowSecond, 1);
            if (requestWindow.sum(nowSecond) > spec.rpm()) {
                requestWindow.add(nowSecond, -1);
                return rpmRefusal(spec, requestWindow.secondsUntilAtMost(nowSecond, spec.rpm() - 1));
            }
        }
        requests.increment();
        return null;
    }

    private static Refusal rpmRefusal(ClientSpec spec, long retryAfter) {
        return new Refusal(429, "rpm", "This client key has made its " + spec.rpm() + " requests per minute.", retryAfter);
    }

    /** Of two refusals (either may be null), the one that lasts longer. */
    private static Refusal later(Refusal a, Refusal b) {
        return a == null || (b != null && b.retryAfterSeconds() > a.retryAfterSeconds()) ? b : a;
    }

    /**
     * The limits that need the body: the model allow-list, the token limits with the answers in
     * flight, and concurrent streams. A request admitted here is in flight, and a stream holds one
     * of {@code max_streams}, until {@link #ended}; a refused one holds nothing.
     */
    public Refusal admitBody(long nowSecond, String model, boolean stream) {
        return admitBody(nowSecond, model, stream, false);
    }

    /**
     * As above; {@code uncountedStream}: a stream whose tokens the upstream will not report (it did
     * not ask for them), refused to a client with token limits, which it would otherwise escape.
     */
    public Refusal admitBody(long nowSecond, String model, boolean stream, boolean uncountedStream) {
        ClientSpec spec = this.spec;
        if (spec.models() != null && (model == null || !spec.models().contains(model))) {
            return new Refusal(403, "model_not_allowed", model == null
                    ? "This client key must name one of its allowed models."
                    : "This client key may not use the model " + printable(model) + ".", -1);
        }
        if (uncountedStream && (spec.tpm() > 0 || spec.dailyTokens() > 0)) {
            return new Refusal(400, "include_usage_required", "This client key has token limits: a streamed request"
                    + " must ask for its usage with \"stream_options\": {\"include_usage\": true}.", -1);
        }
        Refusal tokens = takeInFlight(spec, nowSecond);
        if (tokens != null) {
            return tokens;
        }
        // Every admitted stream is counted (the count is shown); only a set limit refuses.
        if (stream && streams.incrementAndGet() > spec.maxStreams() && spec.maxStreams() > 0) {
            streams.decrementAndGet();
            inFlight.decrementAndGet();
            return new Refusal(429, "max_streams", "This client key already has its " + spec.maxStreams()
                    + " streams open.", 1);
        }
        return null;
    }

    /**
     * Counts the request in flight, if the token limits leave room for one more answer beside
     * those in flight; the check and the count are one CAS, so racing requests cannot all take the
     * last room. Every client counts (one atomic add), so that {@link #ended} is the same for all,
     * whatever a reload changed in between.
     */
    private Refusal takeInFlight(ClientSpec spec, long nowSecond) {
        if (spec.tpm() <= 0 && spec.dailyTokens() <= 0) {
            inFlight.incrementAndGet();
            return null;
        }
        SharedCounters counters = shared;
        for (;;) {
            int n = inFlight.get();
            Refusal r = tokenRefusal(spec, counters, nowSecond, reserved(n));
            if (r != null) {
                return r;
            }
            if (inFlight.compareAndSet(n, n + 1)) {
                return null;
            }
        }
    }

    /** The tokens {@code n} answers in flight are expected to add (saturating, never negative). */
    private long reserved(int n) {
        long each = perAnswer.get();
        if (n <= 0 || each <= 0) {
            return 0;
        }
        return each > Long.MAX_VALUE / n ? Long.MAX_VALUE : each * n;
    }

    /**
     * The day and minute token limits, against the tokens counted ({@code counters}: over every
     * instance; null: this one's) plus {@code reserved}. Retry-After takes the reserved tokens as
     * counted now, which is where they will land: for {@code tpm} the seconds until the window
     * has room for them (60 when they alone fill it), for {@code daily_tokens} UTC midnight.
     */
    private Refusal tokenRefusal(ClientSpec spec, SharedCounters counters, long nowSecond, long reserved) {
        Refusal daily = null;
        if (spec.dailyTokens() > 0) {
            long today = counters != null ? counters.total(name("day", Math.floorDiv(nowSecond, DAY_SECONDS)), DAY_TTL_MILLIS)
                    : tokensToday(nowSecond);
            if (plus(today, reserved) >= spec.dailyTokens()) {
                daily = new Refusal(429, "daily_tokens", "This client key has used its " + spec.dailyTokens()
                        + " tokens for today (UTC).", DAY_SECONDS - Math.floorMod(nowSecond, DAY_SECONDS));
                if (daily.retryAfterSeconds() >= 60) {
                    return daily;
                }
            }
        }
        if (spec.tpm() <= 0) {
            return daily;
        }
        long retryAfter;
        if (counters != null) {
            long minute = Math.floorDiv(nowSecond, 60);
            long intoMinute = Math.floorMod(nowSecond, 60L);
            if (plus(slidingMinute(counters, "tpm", minute, intoMinute), reserved) < spec.tpm()) {
                return daily;
            }
            retryAfter = 60 - intoMinute;
        } else if (plus(tokenWindow.sum(nowSecond), reserved) < spec.tpm()) {
            return daily;
        } else {
            retryAfter = tokenWindow.secondsUntilAtMost(nowSecond, spec.tpm() - 1 - reserved);
        }
        // A second before midnight daily_tokens ends sooner than the minute: the later one is the wait.
        return later(daily, new Refusal(429, "tpm", "This client key has used its " + spec.tpm() + " tokens per minute.",
                retryAfter));
    }

    private static long plus(long a, long b) {
        long sum = a + b;
        return sum < 0 ? Long.MAX_VALUE : sum;
    }

    /**
     * The head limits over all instances (contract §14): one-minute windows in Redis, read as a
     * sliding minute (the current window plus the share of the previous one still inside the
     * last 60 s), a UTC-day counter for daily tokens. Exact to within the counters' batching
     * (about a second); never waits on Redis.
     */
    private Refusal admitShared(SharedCounters counters, ClientSpec spec, long nowSecond) {
        // The answers in flight are this instance's own: each instance bounds its own overshoot.
        Refusal tokens = tokenRefusal(spec, counters, nowSecond, reserved(inFlight.get()));
        if (tokens != null) {
            return tokens;
        }
        long minute = Math.floorDiv(nowSecond, 60);
        long intoMinute = Math.floorMod(nowSecond, 60L);
        if (spec.rpm() > 0) {
            counters.add(name("rpm", minute), 1, WINDOW_TTL_MILLIS);
            if (slidingMinute(counters, "rpm", minute, intoMinute) > spec.rpm()) {
                counters.add(name("rpm", minute), -1, WINDOW_TTL_MILLIS);
                return new Refusal(429, "rpm", "This client key has made its " + spec.rpm() + " requests per minute.",
                        60 - intoMinute);
            }
        }
        requests.increment();
        return null;
    }

    private long slidingMinute(SharedCounters counters, String kind, long minute, long intoMinute) {
        long previous = counters.total(name(kind, minute - 1), WINDOW_TTL_MILLIS);
        return counters.total(name(kind, minute), WINDOW_TTL_MILLIS) + previous * (60 - intoMinute) / 60;
    }

    private String name(String kind, long window) {
        return "limit:" + id + ":" + kind + ":" + window;
    }

    private static final long WINDOW_TTL_MILLIS = 180_000;
    private static final long DAY_TTL_MILLIS = 2 * DAY_SECONDS * 1000;

    private static String sha256(String key) {
        try {
            return java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256")
                    .digest(key.getBytes(java.nio.charset.StandardCharsets.UTF_8)));
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * A request admitted by {@link #admitBody} has ended, however it ended (answer, error, client
     * gone); {@code stream}: it was admitted as a stream. Called after its tokens were added, so
     * that there is no moment when they are neither counted nor in flight.
     */
    public void ended(boolean stream) {
        inFlight.decrementAndGet();
        if (stream) {
            streams.decrementAndGet();
        }
    }

    /** Tokens of an answer this client received, counted when the answer ended. */
    public void addTokens(long nowSecond, long prompt, long completion, long cached) {
        long total = prompt + completion;
        promptTokens.add(prompt);
        completionTokens.add(completion);
        cachedTokens.add(cached);
        if (total <= 0) {
            return;
        }
        expect(total);
        charge(nowSecond, total);
    }

    /**
     * An answer cut off before the upstream said what it cost (the client left, or the upstream
     * failed, after {@code documents} events): charged against the token limits as an estimate,
     * not counted as usage. Without it, a client that hangs up just before a stream's last event
     * (the usage comes after {@code finish_reason}) kept whole answers off its limits, which the
     * upstream billed all the same. The estimate: a token per relayed event, and the prompt at the
     * usual four bytes a token of the body, but no more than this client's answers have lately
     * brought (an image's base64 is not a hundred thousand tokens).
     */
    public void chargeCutAnswer(long nowSecond, int documents, int bodyBytes) {
        ClientSpec s = spec;
        if (s.tpm() <= 0 && s.dailyTokens() <= 0) {
            return;
        }
        long prompt = bodyBytes / 4;
        long usual = perAnswer.get();
        if (usual > 0) {
            prompt = Math.min(prompt, usual);
        }
        long total = prompt + Math.max(0, documents);
        if (total > 0) {
            charge(nowSecond, total);
        }
    }

    /** Tokens into the limit windows: this instance's, the shared ones, and the UTC day's. */
    private void charge(long nowSecond, long total) {
        tokenWindow.add(nowSecond, total);
        SharedCounters counters = shared;
        if (counters != null) {
            counters.add(name("tpm", Math.floorDiv(nowSecond, 60)), total, WINDOW_TTL_MILLIS);
            counters.add(name("day", Math.floorDiv(nowSecond, DAY_SECONDS)), total, DAY_TTL_MILLIS);
        }
        long day = Math.floorDiv(nowSecond, DAY_SECONDS);
        for (;;) {
            long v = today.get();
            if ((v >>> TOKEN_BITS) > day) {
                // Stamped before a midnight another loop's charge already crossed: that day is
                // over, and taking the counter back to it would wipe the new day's count.
                return;
            }
            long tokens = (v >>> TOKEN_BITS) == day ? v & TOKEN_MASK : 0;
            long next = day << TOKEN_BITS | Math.min(TOKEN_MASK, tokens + total);
            if (today.compareAndSet(v, next)) {
                return;
            }
        }
    }

    /**
     * What the next answer is expected to bring: up at once to a larger answer (an overshoot is
     * what is being bounded), down by an eighth of the gap per smaller one, so that one huge
     * answer does not hold a client to a single request in flight for good.
     */
    private void expect(long total) {
        for (;;) {
            long v = perAnswer.get();
            long next = total >= v ? total : v - (v - total) / 8;
            if (next == v || perAnswer.compareAndSet(v, next)) {
                return;
            }
        }
    }

    /** Requests of this client admitted and not yet ended. */
    public int inFlight() {
        return inFlight.get();
    }

    long tokensToday(long nowSecond) {
        long v = today.get();
        return (v >>> TOKEN_BITS) == Math.floorDiv(nowSecond, DAY_SECONDS) ? v & TOKEN_MASK : 0;
    }

    public int openStreams() {
        return streams.get();
    }

    public long requests() {
        return requests.sum();
    }

    public long promptTokens() {
        return promptTokens.sum();
    }

    public long completionTokens() {
        return completionTokens.sum();
    }

    public long cachedTokens() {
        return cachedTokens.sum();
    }

    private static String printable(String model) {
        String m = model.length() > 100 ? model.substring(0, 100) + "…" : model;
        StringBuilder b = new StringBuilder(m.length() + 2).append('"');
        for (int i = 0; i < m.length(); i++) {
            char c = m.charAt(i);
            b.append(c < 0x20 || c == 0x7f ? '?' : c);
        }
        return b.append('"').toString();
    }
}
