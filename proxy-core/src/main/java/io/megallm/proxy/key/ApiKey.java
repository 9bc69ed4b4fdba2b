package io.megallm.proxy.key;

import io.netty.util.AsciiString;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.atomic.LongAdder;

/**
 * One upstream key with its live state and counters. The secret is reachable only as a
 * ready-made {@code Authorization} value; {@link #toString()} and {@link #masked()} are the
 * only textual forms, so logging a key by accident still prints the masked form.
 */
public final class ApiKey {

    private final String secret;
    private final String masked;
    private final AsciiString authorization;
    /** SHA-256 of the secret in hex: names the key in the state file without revealing it. */
    private final String id;
    /** The first 64 bits of that digest: the key's seed in rendezvous hashing. */
    private final long affinitySeed;
    private final AtomicReference<KeyState> state = new AtomicReference<>(KeyState.AVAILABLE);
    private final KeyPacer pacer = new KeyPacer();
    private final AtomicLong requests = new AtomicLong();
    private final AtomicLong failures = new AtomicLong();
    private final LongAdder promptTokens = new LongAdder();
    private final LongAdder completionTokens = new LongAdder();
    private final LongAdder cachedTokens = new LongAdder();
    private volatile int lastStatus;

    ApiKey(String secret) {
        this.secret = secret;
        this.masked = mask(secret);
        this.authorization = AsciiString.cached("Bearer " + secret);
        byte[] digest = sha256(secret);
        this.id = HexFormat.of().formatHex(digest);
        long seed = 0;
        for (int i = 0; i < 8; i++) {
            seed = (seed << 8) | (digest[i] & 0xff);
        }
        this.affinitySeed = seed;
    }

    static byte[] sha256(String secret) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(secret.getBytes(StandardCharsets.UTF_8));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every JVM has SHA-256", e);
        }
    }

    /** SHA-256 of the key in hex; safe to write to files. */
    public String id() {
        return id;
    }

    long affinitySeed() {
        return affinitySeed;
    }

    /** First 8 and last 4 characters; short keys show less so that masking never reveals a whole key. */
    public static String mask(String secret) {
        int n = secret.length();
        if (n >= 16) {
            return secret.substring(0, 8) + "…" + secret.substring(n - 4);
        }
        if (n >= 8) {
            return secret.substring(0, 3) + "…" + secret.substring(n - 2);
        }
        return "…";
    }

    public String masked() {
        return masked;
    }

    /** The header value {@code Bearer <key>}; the only way the secret leaves this class. */
    public AsciiString authorization() {
        return authorization;
    }

    boolean sameSecret(String other) {
        return secret.equals(other);
    }

    String secret() {
        return secret;
    }

    public KeyState state() {
        return state.get();
    }

    KeyPacer pacer() {
        return pacer;
    }

    /** Requests per second this key is paced at (learned from its 429s), 0 when it is not paced. */
    public double pacedPerSecond(long nowNanos) {
        return pacer.perSecond(nowNanos);
    }

    boolean transition(KeyState expected, KeyState next) {
        return state.compareAndSet(expected, next);
    }

    void force(KeyState next) {
        state.set(next);
    }

    public long requests() {
        return requests.get();
    }

    /** Tokens the upstream reported for answers to requests sent with this key (contract §13). */
    public void addTokens(long prompt, long completion, long cached) {
        promptTokens.add(prompt);
        completionTokens.add(completion);
        cachedTokens.add(cached);
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

    public long failures() {
        return failures.get();
    }

    public int lastStatus() {
        return lastStatus;
    }

    void recordAttempt() {
        requests.incrementAndGet();
        pacer.sent();
    }

    /** True when the answer freed the key's probe (it was on probation, and this was the probe's answer). */
    boolean recordStatus(int status, boolean failure) {
        lastStatus = status;
        boolean probeFreed = pacer.answered();
        if (failure) {
            failures.incrementAndGet();
        }
        return probeFreed;
    }

    @Override
    public String toString() {
        return masked;
    }
}
