package io.megallm.proxy.bench.harness;

/** Something the harness started: the mock, a proxy, Nginx or HAProxy. */
public interface Service extends AutoCloseable {

    String name();

    /** The port it listens on (127.0.0.1). */
    int port();

    /** Its process id, or -1 when it runs inside the harness's JVM. */
    long pid();

    /** How it was started, for the report. */
    String describe();

    @Override
    void close();
}
