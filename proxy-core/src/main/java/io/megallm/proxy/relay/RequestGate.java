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
    RequestGate OPEN = (exchange, model, stream) -> true;

    /** True to go on; false when the gate has answered the exchange itself. */
    boolean admit(Exchange exchange, String model, boolean stream);
}
