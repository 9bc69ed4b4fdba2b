package io.megallm.proxy.key;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;

/**
 * The set of upstream keys and their states. The request path reads a volatile array
 * snapshot and swaps key states with CAS; only reloads (rare, admin-driven) replace the array,
 * and they are serialised among themselves, never against requests.
 */
public final class KeyPool {

    private static final Logger log = LoggerFactory.getLogger(KeyPool.class);

    private static final long MAX_COOLDOWN_SECONDS = TimeUnit.DAYS.toSeconds(7);

    private final LongSupplier nanoClock;
    private volatile ApiKey[] keys = new ApiKey[0];

    public KeyPool(LongSupplier nanoClock) {
        this.nanoClock = nanoClock;
    }

    public KeyPool() {
        this(System::nanoTime);
    }

    /** The current snapshot; callers must not modify it. */
    ApiKey[] snapshot() {
        return keys;
    }

    public List<ApiKey> keys() {
        return List.of(keys);
    }

    public long now() {
        return nanoClock.getAsLong();
    }

    /** Replaces the key list; keys present before and after keep their state and counters. */
    public synchronized ReloadResult reload(List<String> secrets) {
        ApiKey[] old = keys;
        Map<String, ApiKey> byValue = new HashMap<>();
        for (ApiKey k : old) {
            byValue.put(k.secret(), k);
        }
        List<ApiKey> next = new ArrayList<>(secrets.size());
        int kept = 0;
        for (String s : secrets) {
            ApiKey existing = byValue.remove(s);
            if (existing != null) {
                kept++;
                next.add(existing);
            } else {
                next.add(new ApiKey(s));
            }
        }
        keys = next.toArray(new ApiKey[0]);
        return new ReloadResult(next.size(), next.size() - kept, byValue.size(), kept);
    }

    /** Returns every failed or cooling key to rotation. */
    public ResetResult resetFailed() {
        int reset = 0;
        for (ApiKey k : keys) {
            KeyState s = k.state();
            if (s.kind() != KeyState.Kind.AVAILABLE) {
                k.force(KeyState.AVAILABLE);
                reset++;
                log.info("key {} returned to rotation by reset (was {})", k, s.kind().name().toLowerCase());
            }
        }
        KeyStats stats = stats();
        return new ResetResult(reset, stats.total(), stats.available());
    }

    public KeyStats stats() {
        long now = now();
        int available = 0;
        int failed = 0;
        int cooling = 0;
        ApiKey[] snapshot = keys;
        for (ApiKey k : snapshot) {
            switch (k.state().effectiveKind(now)) {
                case AVAILABLE -> available++;
                case FAILED -> failed++;
                case COOLING_DOWN -> cooling++;
            }
        }
        return new KeyStats(snapshot.length, available, failed, cooling);
    }

    /**
     * Whole seconds until the first cooling key returns (at least 1), or -1 when no key is
     * cooling (every unavailable key has failed and only an operator can bring it back).
     */
    public long secondsUntilNextAvailable() {
        long now = now();
        long best = Long.MAX_VALUE;
        for (ApiKey k : keys) {
            KeyState s = k.state();
            if (s.kind() == KeyState.Kind.COOLING_DOWN) {
                best = Math.min(best, Math.max(0L, s.untilNanos() - now));
            }
        }
        if (best == Long.MAX_VALUE) {
            return -1;
        }
        return Math.max(1L, (best + TimeUnit.SECONDS.toNanos(1) - 1) / TimeUnit.SECONDS.toNanos(1));
    }

    /** Seconds of cooldown left for a key, or -1 when it is not cooling. */
    public long cooldownRemainingSeconds(ApiKey key) {
        KeyState s = key.state();
        long now = now();
        if (s.kind() != KeyState.Kind.COOLING_DOWN || s.usableAt(now)) {
            return -1;
        }
        long left = s.untilNanos() - now;
        return Math.max(1L, (left + TimeUnit.SECONDS.toNanos(1) - 1) / TimeUnit.SECONDS.toNanos(1));
    }

    public void recordAttempt(ApiKey key) {
        key.recordAttempt();
    }

    /** An answer that says nothing bad about the key; a cooling key whose time is up is flipped back. */
    public void recordSuccess(ApiKey key, int status) {
        key.recordStatus(status, false);
        KeyState s = key.state();
        if (s.kind() == KeyState.Kind.COOLING_DOWN && s.usableAt(now()) && key.transition(s, KeyState.AVAILABLE)) {
            log.info("key {} is available again after cooling down", key);
        }
    }

    /** The upstream does not count this against the key (5xx, timeout, connect error). */
    public void recordTransient(ApiKey key, int status) {
        key.recordStatus(status, false);
    }

    /** 401/403/402: out of rotation until a reset or a reload. */
    public void markFailed(ApiKey key, int status) {
        key.recordStatus(status, true);
        String reason = "upstream " + status;
        KeyState failed = KeyState.failed(reason);
        // Retry the CAS: a concurrent flip (cooling → available) must not swallow a rejection.
        for (;;) {
            KeyState s = key.state();
            if (s.kind() == KeyState.Kind.FAILED) {
                return;
            }
            if (key.transition(s, failed)) {
                log.warn("key {} marked failed: {}", key, reason);
                return;
            }
        }
    }

    /** 429: rests for the given seconds, then returns by itself. */
    public void coolDown(ApiKey key, int status, long seconds) {
        key.recordStatus(status, true);
        // Capped at a week so that an absurd Retry-After cannot overflow the clock arithmetic.
        long until = now() + TimeUnit.SECONDS.toNanos(Math.min(Math.max(0L, seconds), MAX_COOLDOWN_SECONDS));
        KeyState cooling = KeyState.coolingUntil(until, "upstream " + status);
        for (;;) {
            KeyState s = key.state();
            if (s.kind() == KeyState.Kind.FAILED) {
                return;
            }
            // A later deadline wins, so two concurrent 429s never shorten a rest.
            if (s.kind() == KeyState.Kind.COOLING_DOWN && s.untilNanos() - until >= 0) {
                return;
            }
            if (key.transition(s, cooling)) {
                log.warn("key {} cooling down for {}s after upstream {}", key, seconds, status);
                return;
            }
        }
    }
}
