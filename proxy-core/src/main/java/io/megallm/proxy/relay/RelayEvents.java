package io.megallm.proxy.relay;

/**
 * What the relay reports about its upstream work, for metrics. Called on event loops, once per
 * attempt or per request, never per chunk; implementations must not block or lock.
 */
public interface RelayEvents {

    RelayEvents NONE = new RelayEvents() { };

    /** How an upstream attempt ended. */
    enum Outcome { OK, STATUS_401, STATUS_402, STATUS_403, STATUS_429, STATUS_5XX, TIMEOUT, CONNECT_ERROR, CLIENT_CANCELLED }

    default void attempt(Outcome outcome) {
    }

    /** The request moved to another key. */
    default void keySwitch() {
    }

    /** The request was retried with the same key. */
    default void retry() {
    }

    /** Upstream time to response head, for an attempt that got one. */
    default void upstreamHead(long nanos) {
    }

    /** Upstream time from request sent to response end, for a relayed answer. */
    default void upstreamDone(long nanos) {
    }

    /** A relayed answer cut because the upstream failed or went silent after the head was sent. */
    default void truncated() {
    }

    default void requestBytes(long bytes) {
    }

    /** How a wait for a key ended (contract §7, KEY_WAIT). */
    enum KeyWait { SERVED, TIMED_OUT, CLIENT_GONE, FULL }

    /** A request waited for a key ({@code nanos} long; 0 for a wait refused because it was full). */
    default void keyWait(KeyWait outcome, long nanos) {
    }

    /** A resend after a transient failure was refused by the retry budget; the failure went to the client. */
    default void retryRefused() {
    }

    /** A request with a prompt_cache_key/user got a key; {@code firstChoice}: its own key, not a stand-in. */
    default void affinity(boolean firstChoice) {
    }
}
