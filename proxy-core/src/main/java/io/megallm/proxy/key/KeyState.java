package io.megallm.proxy.key;

/**
 * Immutable state of one pool key. A key changes state by swapping the whole object,
 * so readers on the request path never see a half-written state and never lock.
 *
 * <p>Besides the kind an operator sees, a state carries what the next transition needs: the
 * number of consecutive 429s (so that the next rest doubles), the current wait between trials
 * of a failed key (so that the next one doubles), and whether a trial is running.
 */
public final class KeyState {

    public enum Kind { AVAILABLE, COOLING_DOWN, FAILED }

    static final KeyState AVAILABLE = new KeyState(Kind.AVAILABLE, 0L, null, 0, 0L, false);

    private final Kind kind;
    private final long untilNanos;
    private final String reason;
    private final int strikes;
    private final long recheckNanos;
    private final boolean onTrial;

    private KeyState(Kind kind, long untilNanos, String reason, int strikes, long recheckNanos, boolean onTrial) {
        this.kind = kind;
        this.untilNanos = untilNanos;
        this.reason = reason;
        this.strikes = strikes;
        this.recheckNanos = recheckNanos;
        this.onTrial = onTrial;
    }

    /** Available, remembering {@code strikes} consecutive 429s (an accepted request clears them). */
    static KeyState available(int strikes) {
        return strikes == 0 ? AVAILABLE : new KeyState(Kind.AVAILABLE, 0L, null, strikes, 0L, false);
    }

    static KeyState coolingUntil(long untilNanos, String reason) {
        return coolingUntil(untilNanos, reason, 0);
    }

    static KeyState coolingUntil(long untilNanos, String reason, int strikes) {
        return new KeyState(Kind.COOLING_DOWN, untilNanos, reason, strikes, 0L, false);
    }

    /** Failed for good: only a reset or a reload brings it back ({@code KEY_RECHECK=0}). */
    static KeyState failed(String reason) {
        return new KeyState(Kind.FAILED, 0L, reason, 0, 0L, false);
    }

    /** Failed, with its next trial at {@code trialAtNanos} after a wait of {@code recheckNanos}. */
    static KeyState failed(String reason, long trialAtNanos, long recheckNanos) {
        return new KeyState(Kind.FAILED, trialAtNanos, reason, 0, recheckNanos, false);
    }

    /** This failed key, claimed for a trial until {@code leaseEndNanos} (after which another may claim it). */
    KeyState onTrialUntil(long leaseEndNanos) {
        return new KeyState(Kind.FAILED, leaseEndNanos, reason, 0, recheckNanos, true);
    }

    public Kind kind() {
        return kind;
    }

    /**
     * The nanoTime at which a cooling key returns, or a failed key's next trial is due (or its
     * running trial's claim lapses); meaningless for an available key.
     */
    public long untilNanos() {
        return untilNanos;
    }

    /** Why the key left rotation ("upstream 401"), or null while available. */
    public String reason() {
        return reason;
    }

    /** Consecutive 429s of this key not yet cleared by an accepted request. */
    public int strikes() {
        return strikes;
    }

    /** The wait before this failed key's next trial; 0 when failed keys are not rechecked. */
    public long recheckNanos() {
        return recheckNanos;
    }

    /** A failed key whose trial request is on its way. */
    public boolean onTrial() {
        return onTrial;
    }

    /** A failed key that will get trials by itself (KEY_RECHECK above 0). */
    public boolean rechecks() {
        return kind == Kind.FAILED && recheckNanos > 0;
    }

    /** A failed key whose trial may be claimed now. */
    public boolean trialDueAt(long nowNanos) {
        return rechecks() && nowNanos - untilNanos >= 0;
    }

    /** A cooling key whose time is up counts as available even before anyone flips it back. */
    public boolean usableAt(long nowNanos) {
        return kind == Kind.AVAILABLE || (kind == Kind.COOLING_DOWN && nowNanos - untilNanos >= 0);
    }

    /** What an operator sees: a cooling key whose time is up is already available again. */
    public Kind effectiveKind(long nowNanos) {
        return usableAt(nowNanos) ? Kind.AVAILABLE : kind;
    }
}
