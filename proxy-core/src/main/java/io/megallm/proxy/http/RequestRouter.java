package io.megallm.proxy.http;

/** Decides what answers a complete request; called on the connection's event loop. */
@FunctionalInterface
public interface RequestRouter {
    void route(Exchange exchange);
}
