package io.megallm.proxy.upstream;

/** The upstream sent something that is not a valid HTTP/1.x response; its connection is closed. */
public final class MalformedResponseException extends RuntimeException {

    MalformedResponseException(String message) {
        // No stack trace: this is the upstream's fault, never ours, and it may come often.
        super(message, null, false, false);
    }
}
