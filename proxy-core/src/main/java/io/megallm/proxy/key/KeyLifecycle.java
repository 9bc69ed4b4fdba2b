package io.megallm.proxy.key;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.Consumer;

/**
 * Every transition of a key's state (contract §7), in one place:
 *
 * <pre>
 *   available --429--> cooling_down --(rest over)--> available
 *   available --401/402/403*--> failed --(KEY_RECHECK)--> trial --(accepted)--> available
 *                                  ^                        |
 *                                  +--(401/402/403/429: wait doubled, up to 24 h)
 * </pre>
 *
 * The relay reports what an upstream answer said ({@link #accepted}, {@link #rejected},
 * {@link #limited}, {@link #transientFailure}); this class decides what it means for the key. Each
 * change is one CAS of an immutable {@link KeyState}, retried when another loop got there first:
 * no lock. Every change is logged with the masked key and why, and handed to the listeners
 * (waiters, persistence, metrics).
 */
public final class KeyLifecycle {

    private static final Logger log = LoggerFactory.getLogger(KeyLifecycle.class);

    /**
     * The longest rest an upstream's Retry-After can give a key. A daily quota resets within a
     * day, and one forged or mistaken header must not take a key out for longer (it outlives a
     * restart in the state file); it also keeps the clock arithmetic from overflowing.
     */
    static final long MAX_UPSTREAM_REST_SECONDS = TimeUnit.DAYS.toSeconds(1);
    private static final long SECOND = TimeUnit.SECONDS.toNanos(1);

    private final KeyClock clock;
    private final KeyPolicy policy;
    private final CopyOnWriteArrayList<KeyStateListener> listeners = new CopyOnWriteArrayList<>();
    private final CopyOnWriteArrayList<Consumer<ApiKey>> probeListeners = new CopyOnWriteArrayList<>();
    private volatile TrialGate trialGate = TrialGate.OPEN;
    /** How trials ended, for /metrics: only this class knows a failed trial from one that got no answer. */
    private final LongAdder[] trials = new LongAdder[TrialOutcome.values().length];

    /** How a failed key's trial ended. */
    public enum TrialOutcome { PASSED, FAILED, NO_ANSWER }

    public KeyLifecycle(KeyClock clock, KeyPolicy policy) {
        this.clock = clock;
        this.policy = policy;
        for (int i = 0; i < trials.length; i++) {
            trials[i] = new LongAdder();
        }
    }

    /** Trials that ended so, since start. */
    public long trials(TrialOutcome outcome) {
        return trials[outcome.ordinal()].sum();
    }

    public KeyPolicy policy() {
        return policy;
    }

    public KeyClock clock() {
        return clock;
    }

    /** Registered at start; the list is read without a lock on every change. */
    public void addListener(KeyStateListener listener) {
        listeners.add(listener);
    }

    /**
     * Told when a failure that is not the key's (a 5xx, a 403 not yet blamed, no answer) frees
     * the probe of a key on probation: the key may take a request again, with no change of state
     * for {@link #addListener} to see. Registered at start.
     */
    public void addProbeListener(Consumer<ApiKey> listener) {
        probeListeners.add(listener);
    }

    /** Set once at start when instances share key states; {@link TrialGate#OPEN} otherwise. */
    public void setTrialGate(TrialGate gate) {
        this.trialGate = gate;
    }

    // ---- what the upstream said -----------------------------------------------------------------

    /**
     * An answer that says nothing bad about the key (any status but 401/402/403/429 and the
     * transient ones): it clears the 429 count, ends a rest that is over, and passes a trial.
     */
    public void accepted(ApiKey key, int status) {
        key.recordStatus(status, false);
        for (;;) {
            KeyState s = key.state();
            long now = clock.nanoTime();
            KeyState next;
            String why;
            switch (s.kind()) {
                case AVAILABLE -> {
                    if (s.strikes() == 0) {
                        return;
                    }
                    next = KeyState.AVAILABLE;
                    why = null;
                }
                case COOLING_DOWN -> {
                    if (s.usableAt(now)) {
                        next = KeyState.AVAILABLE;
                        why = "available again after its rest (upstream " + status + ")";
                    } else if (s.strikes() != 0) {
                        // A request sent before the 429 came back fine: the count restarts, the rest stays.
                        next = KeyState.coolingUntil(s.untilNanos(), s.reason(), 0);
                        why = null;
                    } else {
                        return;
                    }
                }
                default -> {
                    if (!s.onTrial()) {
                        // An answer to a request sent before the key failed proves nothing about now.
                        return;
                    }
                    next = KeyState.AVAILABLE;
                    why = "passed its trial (upstream " + status + "): back in rotation";
                }
            }
            if (apply(key, s, next, why)) {
                if (s.onTrial()) {
                    trials[TrialOutcome.PASSED.ordinal()].increment();
                }
                return;
            }
        }
    }

    /**
     * 401/402 (or a 403 the relay has confirmed): out of rotation, with a trial after
     * {@code KEY_RECHECK}; a failed trial doubles the wait, up to a day.
     */
    public void rejected(ApiKey key, int status) {
        key.recordStatus(status, true);
        String reason = "upstream " + status;
        for (;;) {
            KeyState s = key.state();
            KeyState next;
            String why;
            if (s.kind() == KeyState.Kind.FAILED) {
                if (!s.onTrial()) {
                    return;
                }
                next = failedTrial(s, reason);
                why = "failed its trial (" + reason + "): " + recheckText(next);
            } else {
                next = firstFailure(reason);
                why = "marked failed: " + reason + "; " + recheckText(next);
            }
            if (apply(key, s, next, why)) {
                if (s.onTrial()) {
                    trials[TrialOutcome.FAILED.ordinal()].increment();
                }
                return;
            }
        }
    }

    /**
     * 429: the key rests for {@code retryAfterSeconds} when the upstream said how long (>= 0),
     * else 1 s doubled per consecutive 429 up to {@code KEY_COOLDOWN}. A 429 on a trial is a
     * failed trial. Of two overlapping rests the later end wins.
     */
    public void limited(ApiKey key, int status, long retryAfterSeconds) {
        key.recordStatus(status, true);
        String reason = "upstream " + status;
        for (;;) {
            KeyState s = key.state();
            long now = clock.nanoTime();
            KeyState next;
            String why;
            if (s.kind() == KeyState.Kind.FAILED) {
                if (!s.onTrial()) {
                    return;
                }
                next = failedTrial(s, reason);
                why = "failed its trial (" + reason + "): " + recheckText(next);
            } else if (s.kind() == KeyState.Kind.COOLING_DOWN && !s.usableAt(now)) {
                // Already resting: this 429 answers a request sent before the rest began (several
                // are in flight on a busy key). It is not one more in a row, and without a later
                // Retry-After it changes nothing; counting it made one burst rest every key 60 s.
                if (retryAfterSeconds < 0) {
                    key.pacer().lateLimited();
                    return;
                }
                long seconds = Math.min(retryAfterSeconds, MAX_UPSTREAM_REST_SECONDS);
                long until = now + seconds * SECOND;
                if (s.untilNanos() - until >= 0) {
                    key.pacer().lateLimited();
                    return;
                }
                next = KeyState.coolingUntil(until, reason, s.strikes());
                why = "cooling down for " + seconds + "s after " + reason + " (Retry-After)";
            } else {
                int strikes = Math.min(s.strikes() + 1, 62);
                long seconds = retryAfterSeconds >= 0
                        ? Math.min(retryAfterSeconds, MAX_UPSTREAM_REST_SECONDS)
                        : adaptiveRestSeconds(strikes);
                long until = now + seconds * SECOND;
                if (s.kind() == KeyState.Kind.COOLING_DOWN && s.untilNanos() - until > 0) {
                    until = s.untilNanos();
                }
                next = KeyState.coolingUntil(until, reason, strikes);
                why = "cooling down for " + seconds + "s after " + reason
                        + (retryAfterSeconds >= 0 ? " (Retry-After)" : " (429 number " + strikes + " in a row)");
            }
            if (apply(key, s, next, why)) {
                if (s.onTrial()) {
                    trials[TrialOutcome.FAILED.ordinal()].increment();
                } else if (s.usableAt(now)) {
                    // A new rest, not a 429 that answers a request sent before the current one began.
                    learnPace(key, now, next.untilNanos());
                } else {
                    key.pacer().lateLimited();
                }
                return;
            }
        }
    }

    /** A rest began: what the key accepted since its last one sets its pace (see {@link KeyPacer}). */
    private void learnPace(ApiKey key, long now, long restEnd) {
        boolean wasPaced = key.pacer().perSecond(now) > 0;
        double perSecond = key.pacer().limited(now, restEnd);
        if (perSecond > 0 && !wasPaced) {
            // No figure: 429s for requests still in flight lower it during the rest that just began.
            log.info("key {} paced: two 429s within 10 s; its requests are spaced at the rate it took between them",
                    key);
        } else if (perSecond == 0 && wasPaced) {
            log.info("key {} no longer paced: its 429s are no longer close together", key);
        }
    }

    /** 1, 2, 4 … seconds for the 1st, 2nd, 3rd … consecutive 429, capped at {@code KEY_COOLDOWN}. */
    /**
     * The longest rest a live key can get: an upstream's capped Retry-After, or KEY_COOLDOWN when
     * an operator set it longer (held to a year, well within what the nanosecond clock spans). A
     * saved or shared state is held to it.
     */
    long longestRestSeconds() {
        return Math.min(Math.max(MAX_UPSTREAM_REST_SECONDS, policy.maxCooldownSeconds()), TimeUnit.DAYS.toSeconds(365));
    }

    long adaptiveRestSeconds(int strikes) {
        // Held to what a restored rest may last (a year at most): KEY_COOLDOWN past ~292 years
        // overflowed the deadline in nanoseconds into the past, and the key got no rest at all.
        long max = Math.min(policy.maxCooldownSeconds(), TimeUnit.DAYS.toSeconds(365));
        if (strikes - 1 >= 62) {
            return max;
        }
        return Math.min(1L << (strikes - 1), max);
    }

    /**
     * A 5xx, a timeout or a connect error: not the key's fault (nor, yet, a 403: the relay blames
     * it only when another key accepts the request). On a trial, a 5xx is "an answer other than
     * 401/402/403/429" and passes it; no answer at
     * all ({@code status == 0}) says nothing, and the trial is handed back to be claimed again.
     */
    public void transientFailure(ApiKey key, int status) {
        boolean probeFreed = key.recordStatus(status, false);
        KeyState s = key.state();
        if (!s.onTrial()) {
            if (probeFreed) {
                // Waiters for this key slept until the probe's lease ran out (5 s) beside a key
                // they could take (found by KeyLifecycleModelTest, seed 1535). A waiter woken for
                // a key that rests again after all only waits on.
                for (Consumer<ApiKey> l : probeListeners) {
                    l.accept(key);
                }
            }
            return;
        }
        if (status >= 500) {
            accepted(key, status);
        } else if (status == 0) {
            abandonTrial(key);
        }
        // A 403 the relay does not blame yet is a refusal: it never passes a trial (the trial's own
        // 403 fails it, reported as a rejection); this one came for a request sent before the failure.
    }

    /**
     * No answer came for a request sent with a key not on trial: it says nothing about the key, and
     * the key's probe, if that request was it, is free again for the next request (else the waiters
     * slept out the probe's 5-s lease beside the key, while the request had moved on). Its last
     * status stays the last one it answered with.
     */
    public void unanswered(ApiKey key) {
        if (key.pacer().answered()) {
            for (Consumer<ApiKey> l : probeListeners) {
                l.accept(key);
            }
        }
    }

    // ---- trials ---------------------------------------------------------------------------------

    /**
     * Claims this failed key's trial if it is due: exactly one caller wins the CAS, and the claim
     * lapses after the lease so that a request that vanished cannot keep the key out for good.
     */
    public boolean claimTrial(ApiKey key) {
        KeyState s = key.state();
        long now = clock.nanoTime();
        if (!s.trialDueAt(now) || !trialGate.mayStart(key)) {
            return false;
        }
        KeyState claimed = s.onTrialUntil(now + TimeUnit.SECONDS.toNanos(policy.trialLeaseSeconds()));
        return apply(key, s, claimed, s.onTrial() ? "trial claim lapsed; new trial started" : "on trial");
    }

    /** The trial request ended without an answer about the key (client gone, no answer): due again now. */
    public void abandonTrial(ApiKey key) {
        for (;;) {
            KeyState s = key.state();
            if (!s.onTrial()) {
                return;
            }
            KeyState back = KeyState.failed(s.reason(), clock.nanoTime(), s.recheckNanos());
            if (apply(key, s, back, "trial ended without an answer; may be tried again")) {
                trials[TrialOutcome.NO_ANSWER.ordinal()].increment();
                return;
            }
        }
    }

    // ---- operator and restart -------------------------------------------------------------------

    /** Back to rotation by an operator's reset; returns whether the key was out. */
    public boolean reset(ApiKey key) {
        key.pacer().forget();
        for (;;) {
            KeyState s = key.state();
            if (s.kind() == KeyState.Kind.AVAILABLE) {
                if (s.strikes() != 0) {
                    key.transition(s, KeyState.AVAILABLE);
                }
                return false;
            }
            if (apply(key, s, KeyState.AVAILABLE,
                    "returned to rotation by reset (was " + s.kind().name().toLowerCase() + ")")) {
                return true;
            }
        }
    }

    /** A state read back at start, or adopted from another instance; false when a change got there first. */
    boolean restore(ApiKey key, KeyState state, String why) {
        KeyState s = key.state();
        return apply(key, s, state, why);
    }

    // ---- helpers --------------------------------------------------------------------------------

    private KeyState firstFailure(String reason) {
        long recheck = TimeUnit.SECONDS.toNanos(Math.min(policy.recheckSeconds(), KeyPolicy.MAX_RECHECK_SECONDS));
        if (recheck == 0) {
            return KeyState.failed(reason);
        }
        return KeyState.failed(reason, clock.nanoTime() + recheck, recheck);
    }

    private KeyState failedTrial(KeyState s, String reason) {
        long max = TimeUnit.SECONDS.toNanos(KeyPolicy.MAX_RECHECK_SECONDS);
        long wait = Math.min(s.recheckNanos() * 2, max);
        return KeyState.failed(reason, clock.nanoTime() + wait, wait);
    }

    private static String recheckText(KeyState failed) {
        if (!failed.rechecks()) {
            return "out until a reset or reload (KEY_RECHECK=0)";
        }
        return "next trial in " + TimeUnit.NANOSECONDS.toSeconds(failed.recheckNanos()) + "s";
    }

    /** One CAS; on success the change is logged (when it is one an operator cares about) and announced. */
    private boolean apply(ApiKey key, KeyState from, KeyState to, String why) {
        if (!key.transition(from, to)) {
            return false;
        }
        if (why != null) {
            if (to.kind() == KeyState.Kind.AVAILABLE || to.onTrial()) {
                log.info("key {} {}", key, why);
            } else {
                log.warn("key {} {}", key, why);
            }
        }
        // The change has happened: a listener that throws (metrics, state file, Redis) must not
        // take it from the caller, who would otherwise lose the key it just won (a trial nobody
        // runs until it times out), nor from the listeners after it.
        for (KeyStateListener l : listeners) {
            try {
                l.changed(key, from, to);
            } catch (RuntimeException e) {
                log.error("a key state listener failed on key {} ({} -> {}): {}", key, from.kind(), to.kind(), e.toString());
            }
        }
        return true;
    }
}
