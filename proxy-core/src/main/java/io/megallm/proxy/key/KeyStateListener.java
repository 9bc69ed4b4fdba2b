package io.megallm.proxy.key;

/**
 * Told of every key state change, after it happened. Called on whatever thread made the change
 * (usually an event loop): implementations must return at once, never block or lock.
 */
public interface KeyStateListener {

    void changed(ApiKey key, KeyState from, KeyState to);
}
