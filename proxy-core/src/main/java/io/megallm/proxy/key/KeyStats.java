package io.megallm.proxy.key;

/** Pool counts as /health shows them. */
public record KeyStats(int total, int available, int failed, int coolingDown) {
}
