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

    int maxIdlePerLoop() {
        return Math.max(1, (maxIdle + loops - 1) / Math.max(1, loops));
    }
}
