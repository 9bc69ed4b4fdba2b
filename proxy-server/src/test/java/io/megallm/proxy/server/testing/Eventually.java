package io.megallm.proxy.server.testing;

import java.util.concurrent.TimeUnit;

/**
 * Polls a condition that another instance, or Redis, makes true in its own time (a change shared
 * through pub/sub, a batch flushed once a second): there is no event in this process to wait on.
 */
public final class Eventually {

    /** A condition, read again on every poll. */
    public interface Check {
        boolean holds() throws Exception;
    }

    private Eventually() {
    }

    /** Polls until the condition holds, for at most {@code millis}; fails with {@code what} otherwise. */
    public static void await(long millis, String what, Check check) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(millis);
        while (!check.holds()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("not within " + millis + " ms: " + what);
            }
            Thread.sleep(10);
        }
    }
}
