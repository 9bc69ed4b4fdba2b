package io.megallm.proxy.server.config;

/** A configuration value the proxy cannot start with; the message is one line for the operator. */
public final class ConfigError extends Exception {

    private static final long serialVersionUID = 1L;

    public ConfigError(String message) {
        super(message, null, false, false);
    }
}
