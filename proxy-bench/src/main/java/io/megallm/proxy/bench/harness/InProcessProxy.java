package io.megallm.proxy.bench.harness;

import io.megallm.proxy.server.ProxyServer;

/** A {@link ProxyServer} started inside the bench's own JVM, seen as a {@link Service}. */
public final class InProcessProxy implements Service {

    private final String name;
    private final String description;
    private final ProxyServer server;

    public InProcessProxy(String name, String description, ProxyServer server) {
        this.name = name;
        this.description = description;
        this.server = server;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public int port() {
        return server.port();
    }

    /** No process of its own. */
    @Override
    public long pid() {
        return -1;
    }

    @Override
    public String describe() {
        return description;
    }

    @Override
    public void close() {
        server.shutdown();
    }
}
