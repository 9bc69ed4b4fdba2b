package io.megallm.proxy.server.clients;

import io.megallm.proxy.key.ApiKey;

import java.util.Set;

/**
 * One line of the client file (contract §13): a client key and its optional limits; 0 means no
 * limit, a null {@code models} means any model.
 */
public record ClientSpec(String key, String name, long rpm, long tpm, long dailyTokens, int maxStreams,
                         Set<String> models) {

    /** A client of a plain comma-separated PROXY_API_KEYS list: no name, no limits. */
    static ClientSpec plain(String key) {
        return new ClientSpec(key, null, 0, 0, 0, 0, null);
    }

    /** What logs, metrics and /admin/usage show: the name, else the masked key. */
    public String label() {
        return name != null ? name : ApiKey.mask(key);
    }

    @Override
    public String toString() {
        return "ClientSpec[" + label() + "]";
    }
}
