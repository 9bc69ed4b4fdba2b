package io.megallm.proxy.http;

import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpResponseStatus;

/**
 * A request that cannot be read: the status, error code and message the client gets before the
 * connection closes. Thrown for bad input, which is common and cheap, so it has no stack trace.
 */
final class BadRequest extends Exception {

    final HttpResponseStatus status;
    final String code;
    /** The request line's method and target when it was read before the refusal, else null. */
    HttpMethod method;
    String uri;

    BadRequest(HttpResponseStatus status, String code, String message) {
        super(message, null, false, false);
        this.status = status;
        this.code = code;
    }

    BadRequest requestLine(HttpMethod method, String uri) {
        this.method = method;
        this.uri = uri;
        return this;
    }

    static BadRequest malformed() {
        return new BadRequest(HttpResponseStatus.BAD_REQUEST, "malformed_http", "The request is not valid HTTP/1.1.");
    }

    static BadRequest smuggling() {
        return new BadRequest(HttpResponseStatus.BAD_REQUEST, "request_smuggling",
                "A request must not carry both Content-Length and Transfer-Encoding.");
    }
}
