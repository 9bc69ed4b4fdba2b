package io.megallm.proxy.key;

import io.megallm.proxy.http.LogText;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;

/**
 * The set of upstream keys and their states. The request path reads a volatile array
 * snapshot and swaps key states with CAS (through {@link KeyLifecycle}); only reloads (rare,
 * admin-driven) replace the array, and they are serialised among themselves, never against requests.
 */
public final class KeyPool {

    private static final long SECOND = TimeUnit.SECONDS.toNanos(1);

    private final KeyLifecycle lifecycle;
    private final CopyOnWriteArrayList<Runnable> reloadListeners = new CopyOnWriteArrayList<>();
    private volatile ApiKey[] keys = new ApiKey[0];
    /**
     * Saved states ({@link #restore}) of keys the pool did not hold then, by id: applied once, when
     * a reload brings the key. A proxy started before its key file (missing, or a directory Docker
     * made) lost them, and the reload that brought the keys put failed ones back in rotation.
     */
    private final Map<String, SavedKeyState> pendingRestore = new HashMap<>();

    public KeyPool(KeyClock clock, KeyPolicy policy) {
        this.lifecycle = new KeyLifecycle(clock, policy);
    }

    public KeyPool(LongSupplier nanoClock) {
        this(KeyClock.of(nanoClock, System::currentTimeMillis), KeyPolicy.DEFAULTS);
    }

    public KeyPool() {
        this(KeyClock.SYSTEM, KeyPolicy.DEFAULTS);
    }

    public KeyLifecycle lifecycle() {
        return lifecycle;
    }

    /** The current snapshot; callers must not modify it. */
    ApiKey[] snapshot() {
        return keys;
    }

    public List<ApiKey> keys() {
        return List.of(keys);
    }

    public long now() {
        return lifecycle.clock().nanoTime();
    }

    /** Told after every reload (new keys may be usable). */
    public void onReload(Runnable listener) {
        reloadListeners.add(listener);
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
        if (!pendingRestore.isEmpty()) {
            apply(pendingRestore);
        }
        for (Runnable l : reloadListeners) {
            l.run();
        }
        return new ReloadResult(next.size(), next.size() - kept, byValue.size(), kept);
    }

    /** Returns every failed or cooling key to rotation. */
    public ResetResult resetFailed() {
        int reset = 0;
        for (ApiKey k : keys) {
            if (lifecycle.reset(k)) {
                reset++;
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

    /** Keys a request may take right now: usable, with a free slot of their pace, no probe out. */
    public int usableNow() {
        long now = now();
        int n = 0;
        for (ApiKey k : keys) {
            if (k.pacer().nanosUntilTakeable(k.state(), now) == 0) {
                n++;
            }
        }
        return n;
    }

    /** Whether a request may take {@code key} now: not resting, failed or held back by its pace. */
    public boolean takeableNow(ApiKey key) {
        return key.pacer().nanosUntilTakeable(key.state(), now()) == 0;
    }

    /**
     * Nanoseconds until a request may take a key: 0 when one is free now, else until the first
     * rest ends, a paced key has its next slot or a key on probation its probe's answer; -1 when
     * none will come by itself (every key has failed: only a trial or an operator brings one back).
     */
    public long nanosUntilNextUsable() {
        long now = now();
        long best = Long.MAX_VALUE;
        for (ApiKey k : keys) {
            long wait = k.pacer().nanosUntilTakeable(k.state(), now);
            if (wait == 0) {
                return 0;
            }
            if (wait > 0) {
                best = Math.min(best, wait);
            }
        }
        return best == Long.MAX_VALUE ? -1 : best;
    }

    /**
     * Nanoseconds until the next key comes within reach (a rest ends, a slot comes, a probe's lease
     * ends), -1 when nothing is due. What the waiters' timer waits for after it woke some: keys
     * that may be taken now are theirs already.
     */
    public long nanosUntilNextReturn() {
        long now = now();
        long best = Long.MAX_VALUE;
        for (ApiKey k : keys) {
            long wait = k.pacer().nanosUntilTakeable(k.state(), now);
            if (wait > 0) {
                best = Math.min(best, wait);
            }
        }
        return best == Long.MAX_VALUE ? -1 : best;
    }

    /**
     * Nanoseconds until the first cooling key may be taken or an available key held back by its
     * pace gets a slot, -1 when neither: what a request that found no key to move to may wait for
     * (KEY_WAIT). A key that may be taken now is not counted, cooling or not: the request found
     * none, so it has tried them, and waiting for one that is back already would only hold it
     * (a cooling key whose rest is over counted as 0, and the request waited out KEY_WAIT).
     */
    public long nanosUntilRestEnds() {
        return nanosUntilRestEnds(now(), false);
    }

    /** {@code countReturned}: a cooling key whose rest is over counts, as 0. */
    private long nanosUntilRestEnds(long now, boolean countReturned) {
        long best = Long.MAX_VALUE;
        for (ApiKey k : keys) {
            KeyState s = k.state();
            long wait = k.pacer().nanosUntilTakeable(s, now);
            if ((s.kind() == KeyState.Kind.COOLING_DOWN && (countReturned || wait > 0))
                    || (s.kind() == KeyState.Kind.AVAILABLE && wait > 0)) {
                best = Math.min(best, wait);
            }
        }
        return best == Long.MAX_VALUE ? -1 : best;
    }

    /**
     * Whole seconds until the first cooling key returns (at least 1), or -1 when no key is
     * cooling (every unavailable key has failed and only a trial or an operator brings it back).
     */
    public long secondsUntilNextAvailable() {
        long best = nanosUntilRestEnds(now(), true);
        if (best < 0) {
            return -1;
        }
        return Math.max(1L, ceilSeconds(best));
    }

    /** Seconds of cooldown left for a key, or -1 when it is not cooling. */
    public long cooldownRemainingSeconds(ApiKey key) {
        KeyState s = key.state();
        long now = now();
        if (s.kind() != KeyState.Kind.COOLING_DOWN || s.usableAt(now)) {
            return -1;
        }
        return Math.max(1L, ceilSeconds(s.untilNanos() - now));
    }

    /**
     * Seconds until a failed key's next trial (0 when due or running), or -1 when the key is not
     * failed or failed keys get no trials ({@code KEY_RECHECK=0}).
     */
    public long recheckInSeconds(ApiKey key) {
        KeyState s = key.state();
        if (!s.rechecks()) {
            return -1;
        }
        if (s.onTrial()) {
            return 0;
        }
        return ceilSeconds(Math.max(0L, s.untilNanos() - now()));
    }

    private static long ceilSeconds(long nanos) {
        return (nanos + SECOND - 1) / SECOND;
    }

    // ---- outcomes, as the relay reports them (kept here for callers of the older names) ---------

    public void recordAttempt(ApiKey key) {
        key.recordAttempt();
    }

    /** An answer that says nothing bad about the key. */
    public void recordSuccess(ApiKey key, int status) {
        lifecycle.accepted(key, status);
    }

    /** The upstream does not count this against the key (5xx, timeout, connect error). */
    public void recordTransient(ApiKey key, int status) {
        lifecycle.transientFailure(key, status);
    }

    /** No answer at all (connect error, timeout) for a request sent with a key not on trial. */
    public void recordUnanswered(ApiKey key) {
        lifecycle.unanswered(key);
    }

    /** 401/402 or a confirmed 403: failed, with a trial after KEY_RECHECK. */
    public void markFailed(ApiKey key, int status) {
        lifecycle.rejected(key, status);
    }

    /** 429 with a rest the upstream named: that many seconds (a negative count is no rest). */
    public void coolDown(ApiKey key, int status, long seconds) {
        lifecycle.limited(key, status, Math.max(0L, seconds));
    }

    /** 429: {@code retryAfterSeconds} when the upstream named a rest, else -1 for the adaptive rest. */
    public void limited(ApiKey key, int status, long retryAfterSeconds) {
        lifecycle.limited(key, status, retryAfterSeconds);
    }

    // ---- restart --------------------------------------------------------------------------------

    /** Every key's state worth keeping, deadlines on the wall clock. */
    public List<SavedKeyState> savedStates() {
        long now = now();
        long wall = lifecycle.clock().epochMillis();
        ApiKey[] snapshot = keys;
        List<SavedKeyState> out = new ArrayList<>(snapshot.length);
        for (ApiKey k : snapshot) {
            KeyState s = k.state();
            long until = 0;
            if (s.kind() == KeyState.Kind.COOLING_DOWN || s.rechecks()) {
                // A running trial is saved as due now: the next run tries again.
                long left = s.onTrial() ? 0 : Math.max(0L, s.untilNanos() - now);
                until = wall + TimeUnit.NANOSECONDS.toMillis(left);
            }
            out.add(new SavedKeyState(k.id(), s.kind(), s.reason(), until, s.strikes(),
                    TimeUnit.NANOSECONDS.toSeconds(s.recheckNanos())));
        }
        return out;
    }

    /**
     * Applies saved states to the keys in the pool; returns how many were restored. The states of
     * keys it does not hold are kept and applied, once, when a reload brings their key.
     */
    public synchronized int restore(Collection<SavedKeyState> saved) {
        Map<String, SavedKeyState> byId = new HashMap<>();
        for (SavedKeyState s : saved) {
            byId.put(s.id(), s);
        }
        int restored = apply(byId);
        // What is left is for keys not in the pool yet: theirs when a reload brings them.
        pendingRestore.putAll(byId);
        return restored;
    }

    /** Applies the saved states of the pool's keys found in {@code byId}, taking each out of it. */
    private int apply(Map<String, SavedKeyState> byId) {
        long now = now();
        long wall = lifecycle.clock().epochMillis();
        int restored = 0;
        for (ApiKey k : keys) {
            SavedKeyState s = byId.remove(k.id());
            if (s == null || s.kind() == null) {
                continue;
            }
            KeyState state = stateOf(s, now, wall);
            if (state.kind() == KeyState.Kind.AVAILABLE && state.strikes() == 0) {
                continue;
            }
            lifecycle.restore(k, state, "restored from the state file: " + s.kind().name().toLowerCase()
                    + (state.reason() == null ? "" : " (" + state.reason() + ")"));
            restored++;
        }
        return restored;
    }

    /**
     * A state another instance arrived at (contract §14), applied to the key with that id unless
     * this view already says the same (deadlines within a second count as the same). A failed key
     * whose trial runs here keeps it: the trial's answer decides, and it is shared in turn.
     * Listeners hear of the change like any other; one that shares states must not echo it.
     * {@code source} ends the log line ("as another instance found"); null logs nothing (a
     * bookkeeping change such as a trial pushed back while another instance runs it).
     *
     * @return whether the key's state changed
     */
    public boolean adopt(SavedKeyState shared, String source) {
        if (shared.kind() == null) {
            return false;
        }
        ApiKey key = null;
        for (ApiKey k : keys) {
            if (k.id().equals(shared.id())) {
                key = k;
                break;
            }
        }
        if (key == null) {
            return false;
        }
        KeyState next = stateOf(shared, now(), lifecycle.clock().epochMillis());
        KeyState current = key.state();
        if (current.onTrial() && next.kind() == KeyState.Kind.FAILED) {
            return false;
        }
        if (sameAs(current, next)) {
            return false;
        }
        return lifecycle.restore(key, next, source == null ? null : "now " + shared.kind().name().toLowerCase()
                + (next.reason() == null ? "" : " (" + next.reason() + ")") + ", " + source);
    }

    /**
     * A saved or shared state as this instance's, held to the bounds of live ones: a file or a
     * Redis entry is not trusted further than an upstream. A rest ends within the longest a live
     * key can get ({@link KeyLifecycle#longestRestSeconds}), a failed key's next trial comes
     * within its recheck wait (at most a day), the 429 count stays where doubling can count, and
     * the reason is one printable line.
     */
    private static final int MAX_REASON = 200;

    private KeyState stateOf(SavedKeyState s, long now, long wallMillis) {
        long left = Math.max(0L, s.untilEpochMillis() - wallMillis);
        long until = now + TimeUnit.MILLISECONDS.toNanos(Math.min(left, TimeUnit.SECONDS.toMillis(lifecycle.longestRestSeconds())));
        String reason = LogText.printable(s.reason(), MAX_REASON);
        int strikes = Math.max(0, Math.min(s.strikes(), 62));
        return switch (s.kind()) {
            case AVAILABLE -> KeyState.available(strikes);
            case COOLING_DOWN -> KeyState.coolingUntil(until, reason, strikes);
            case FAILED -> restoredFailure(reason, Math.max(0L, s.recheckSeconds()), until, now);
        };
    }

    private static boolean sameAs(KeyState a, KeyState b) {
        if (a.kind() != b.kind() || a.strikes() != b.strikes() || a.onTrial() != b.onTrial()) {
            return false;
        }
        if (a.kind() == KeyState.Kind.AVAILABLE) {
            return true;
        }
        return java.util.Objects.equals(a.reason(), b.reason()) && a.recheckNanos() == b.recheckNanos()
                && Math.abs(a.untilNanos() - b.untilNanos()) < SECOND;
    }

    /** KEY_RECHECK may have changed between runs: 0 now means no trials; trials now but not then start afresh. */
    private KeyState restoredFailure(String reason, long savedRecheckSeconds, long until, long now) {
        long recheck = lifecycle.policy().recheckSeconds();
        if (recheck == 0) {
            return KeyState.failed(reason);
        }
        if (savedRecheckSeconds == 0) {
            long wait = TimeUnit.SECONDS.toNanos(Math.min(recheck, KeyPolicy.MAX_RECHECK_SECONDS));
            return KeyState.failed(reason, now + wait, wait);
        }
        long wait = TimeUnit.SECONDS.toNanos(Math.min(savedRecheckSeconds, KeyPolicy.MAX_RECHECK_SECONDS));
        return KeyState.failed(reason, Math.min(until, now + wait), wait);
    }
}
