package io.megallm.proxy.http;

/** Told once about every exchange when it ends (access log, metrics); runs on the event loop, so it must not block. */
@FunctionalInterface
public interface ExchangeObserver {

    ExchangeObserver NONE = exchange -> { };

    void onEnd(Exchange exchange);
}
