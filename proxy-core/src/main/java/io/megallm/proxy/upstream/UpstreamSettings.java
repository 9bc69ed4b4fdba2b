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

    /**
     * The idle connections the {@code index}-th loop's pool keeps (pools are numbered as loops first
     * use them). The setting is split so that the shares add up to it exactly: 100 over 3 loops is
     * 34, 33, 33; 1 over 2 loops is 1, 0; 0 is 0 everywhere. A pool past the number of loops (not
     * made by the server, which has one per loop) keeps none.
     */
    int maxIdleOfPool(int index) {
        int n = Math.max(1, loops);
        if (index < 0 || index >= n) {
            return 0;
        }
        int budget = Math.max(0, maxIdle);
        return budget / n + (index < budget % n ? 1 : 0);
    }
}
