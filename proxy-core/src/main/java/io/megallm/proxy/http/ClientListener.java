package io.megallm.proxy.http;

/** What a long-running answer (the relay) needs to hear from the client connection. */
public interface ClientListener {

    /** The client's outbound buffer drained below the low watermark. */
    void onClientWritable();

    /** The client connection closed before the answer ended. */
    void onClientGone();
}
