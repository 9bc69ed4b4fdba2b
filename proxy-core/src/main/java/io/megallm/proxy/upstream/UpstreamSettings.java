package io.megallm.proxy.upstream;

/**
 * How upstream connections are made and kept.
 *
 * @param maxConnections   {@code HTTP_POOL_MAXSIZE}: open connections, busy and idle, across all loops
 * @param maxIdle          {@code HTTP_POOL_CONNECTIONS}: idle keep-alive connections kept, across all loops
 * @param timeoutMillis    {@code MEGALLM_TIMEOUT}: connect, wait for a free connection
 * @param idleTtlSeconds   an idle connection is closed after this long, before servers cut it themselves
 * @param loops            number of event loops the idle budget is split over
 */
public record UpstreamSettings(int maxConnections, int maxIdle, long timeoutMillis, long idleTtlSeconds, int loops) {

    /**
     * Requests that may wait for a connection at once; one more is answered 503 at once. At
     * least as many as there are connections, so a pool's worth of requests can queue behind
     * a full pool, and never fewer than 1024.
     */
    int maxWaiters() {
        return Math.max(1024, maxConnections);
    }

    int maxIdlePerLoop() {
        return Math.max(1, (maxIdle + loops - 1) / Math.max(1, loops));
    }
}
