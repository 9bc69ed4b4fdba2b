package io.megallm.proxy.http;

/**
 * Looks at a request as soon as its head is read, before any body byte is buffered: a request that
 * will be refused anyway (a bad client key) must not cost the memory of its body first.
 */
@FunctionalInterface
public interface HeadCheck {

    HeadCheck NONE = exchange -> true;

    /**
     * True to read the body and route the request; the router may then trust what the check checked
     * ({@link Exchange#admittedOnHead()}). False when the check has answered the exchange,
     * synchronously; the body is then never read, and a connection that announced one is closed
     * after the answer. The exchange's body is empty at this point.
     */
    boolean admit(Exchange exchange);
}
