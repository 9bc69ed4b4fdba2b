package io.megallm.proxy.relay;

/**
 * Failover and timing rules of the relay.
 *
 * @param timeoutMillis       {@code MEGALLM_TIMEOUT}: wait for response headers, and longest silence between bytes
 * @param maxRetries          {@code MEGALLM_MAX_RETRIES}: same-key retries on a transient failure
 * @param maxKeyRetries       {@code MAX_KEY_RETRIES}: switches to another key per request
 * @param keyCooldownSeconds  {@code KEY_COOLDOWN}; no longer read by the relay: the key pool's
 *                            {@code KeyPolicy} applies it (the adaptive rest of contract §7)
 * @param defaultModel        {@code DEFAULT_MODEL}: put into a request that names no model; null when unset
 */
public record RelaySettings(long timeoutMillis, int maxRetries, int maxKeyRetries, long keyCooldownSeconds,
                            String defaultModel) {

    public RelaySettings(long timeoutMillis, int maxRetries, int maxKeyRetries, long keyCooldownSeconds) {
        this(timeoutMillis, maxRetries, maxKeyRetries, keyCooldownSeconds, null);
    }
}
