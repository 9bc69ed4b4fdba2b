package io.megallm.proxy.key;

/**
 * Whether this instance may start a failed key's trial that is due by its own clock. Another
 * instance may be running it (contract §14: one trial per key across instances), and a state that
 * arrives late can make the local view think it is due when it is not. Asked on the event loop that
 * would start the trial, only for a key whose trial is due: implementations answer from memory, at
 * once, never from the network.
 */
@FunctionalInterface
public interface TrialGate {

    /** No other instance: every due trial may start. */
    TrialGate OPEN = key -> true;

    boolean mayStart(ApiKey key);
}
