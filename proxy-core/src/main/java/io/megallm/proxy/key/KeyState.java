package io.megallm.proxy.key;

/**
 * Immutable state of one pool key. A key changes state by swapping the whole object,
 * so readers on the request path never see a half-written state and never lock.
 */
public final class KeyState {

    public enum Kind { AVAILABLE, COOLING_DOWN, FAILED }

    static final KeyState AVAILABLE = new KeyState(Kind.AVAILABLE, 0L, null);

    private final Kind kind;
    private final long untilNanos;
    private final String reason;

    private KeyState(Kind kind, long untilNanos, String reason) {
        this.kind = kind;
        this.untilNanos = untilNanos;
        this.reason = reason;
    }

    static KeyState coolingUntil(long untilNanos, String reason) {
        return new KeyState(Kind.COOLING_DOWN, untilNanos, reason);
    }

    static KeyState failed(String reason) {
        return new KeyState(Kind.FAILED, 0L, reason);
    }

    public Kind kind() {
        return kind;
    }

    /** The nanoTime at which a cooling key returns; meaningless for other kinds. */
    public long untilNanos() {
        return untilNanos;
    }

    /** Why the key left rotation ("upstream 401"), or null while available. */
    public String reason() {
        return reason;
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
