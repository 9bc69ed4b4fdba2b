package io.megallm.proxy.server.clients;

import io.megallm.proxy.server.shared.SharedCounters;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The clients allowed to use the relay ({@code PROXY_API_KEYS}): a plain list, or the client file
 * with limits, reloaded when it changes. The request path reads one volatile map; a reload swaps
 * it and keeps the live counters and windows of every key that stays.
 */
public final class ClientRegistry {

    private static final Logger log = LoggerFactory.getLogger(ClientRegistry.class);

    private final Path file;
    private volatile Map<String, Client> byKey;
    private volatile SharedCounters shared;

    private ClientRegistry(Path file, List<ClientSpec> specs) {
        this.file = file;
        this.byKey = index(specs, Map.of());
    }

    /** From a plain comma-separated list: clients without names or limits (none: anyone may call). */
    public static ClientRegistry of(List<String> keys) {
        return new ClientRegistry(null, keys.stream().map(ClientSpec::plain).toList());
    }

    /** From the client file; its bad lines are logged by number, a file refused whole is an IOException saying why. */
    public static ClientRegistry fromFile(Path file) throws IOException {
        ClientFile.Parsed parsed = ClientFile.read(file);
        parsed.warnings().forEach(log::warn);
        log.info("loaded {} client keys from {}", parsed.clients().size(), file);
        return new ClientRegistry(file, parsed.clients());
    }

    /** The client file, or null for a plain list. */
    public Path file() {
        return file;
    }

    /** Re-reads the client file; an unreadable file or one without a client keeps the current set. */
    public synchronized boolean reload() {
        if (file == null) {
            return false;
        }
        ClientFile.Parsed parsed;
        try {
            parsed = ClientFile.read(file);
        } catch (IOException e) {
            log.error("{}; the clients stay as they were", e.getMessage());
            return false;
        }
        parsed.warnings().forEach(log::warn);
        if (parsed.clients().isEmpty()) {
            log.error("client file {} has no client now; the clients stay as they were "
                    + "(unset PROXY_API_KEYS to let anyone call)", file);
            return false;
        }
        byKey = index(parsed.clients(), byKey);
        SharedCounters counters = shared;
        if (counters != null) {
            byKey.values().forEach(c -> c.share(counters));
        }
        log.info("reloaded {} client keys from {}", parsed.clients().size(), file);
        return true;
    }

    private static Map<String, Client> index(List<ClientSpec> specs, Map<String, Client> previous) {
        Map<String, Client> next = new HashMap<>();
        for (ClientSpec spec : specs) {
            Client kept = previous.get(spec.key());
            if (kept != null) {
                kept.update(spec);
                next.put(spec.key(), kept);
            } else {
                next.put(spec.key(), new Client(spec));
            }
        }
        return Map.copyOf(next);
    }

    /** Client limit windows are counted over every instance from now on (REDIS_URL). */
    public synchronized void share(SharedCounters counters) {
        this.shared = counters;
        byKey.values().forEach(c -> c.share(counters));
    }

    /**
     * True when a client key is required at all: with a client file always, even one that left
     * no client (then every client gets 401): a file meant to restrict callers never opens the
     * proxy to everyone.
     */
    public boolean required() {
        return file != null || !byKey.isEmpty();
    }

    /** The client with this key, or null. */
    public Client lookup(String presented) {
        return byKey.get(presented);
    }

    public Collection<Client> clients() {
        return byKey.values();
    }
}
