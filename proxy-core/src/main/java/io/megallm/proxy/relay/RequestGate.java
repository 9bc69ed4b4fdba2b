package io.megallm.proxy.relay;

import io.megallm.proxy.http.Exchange;

/**
 * The program's say on a request once its JSON body is known and before any key is touched:
 * the client limits that need the model or the stream flag (contract §13). The relay knows no
 * clients; the program installs the gate.
 */
@FunctionalInterface
public interface RequestGate {

    /** Lets every request through. */
    RequestGate OPEN = (exchange, model, stream, uncountedStream) -> true;

    /**
     * True to go on; false when the gate has answered the exchange itself. {@code uncountedStream}:
     * a Chat Completions or Completions stream that did not ask for its usage
     * ({@code stream_options.include_usage}), so its tokens will not be known.
     */
    boolean admit(Exchange exchange, String model, boolean stream, boolean uncountedStream);
}
