package io.megallm.proxy.server.shared;

/** Whether the state shared between instances (contract §14) is reachable now, for /health and /metrics. */
public interface SharedState {

    boolean up();
}
