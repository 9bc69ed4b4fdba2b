package io.megallm.proxy.relay;

/** What an upstream status means for the key and for the request (contract §7). */
public final class FailoverPolicy {

    public enum Verdict {
        /** Relay to the client as is; nothing wrong with the key. */
        RELAY,
        /** 401/402: the key leaves rotation; try another key. */
        KEY_FAILED,
        /**
         * 403: a banned key, or a request this account may not make. Try another key; the 403 key
         * is blamed only when another key then accepts the request (an answer below 400), and a
         * second 403 goes to the client with nobody blamed.
         */
        KEY_FORBIDDEN,
        /** 429: the key rests; try another key. */
        KEY_COOLING,
        /** 500/502/503/504: the same key again after a short backoff, then another key. */
        TRANSIENT
    }

    private FailoverPolicy() {
    }

    public static Verdict classify(int status) {
        return switch (status) {
            case 401, 402 -> Verdict.KEY_FAILED;
            case 403 -> Verdict.KEY_FORBIDDEN;
            case 429 -> Verdict.KEY_COOLING;
            case 500, 502, 503, 504 -> Verdict.TRANSIENT;
            default -> Verdict.RELAY;
        };
    }

    /** Backoff before the n-th (1-based) retry with the same key: 100, 200, 400 ms, … capped at 2 s. */
    public static long backoffMillis(int retry) {
        int shift = Math.min(Math.max(retry - 1, 0), 5);
        return Math.min(100L << shift, 2000L);
    }
}
