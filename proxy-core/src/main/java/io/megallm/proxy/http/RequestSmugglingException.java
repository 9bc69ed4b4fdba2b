package io.megallm.proxy.http;

import io.netty.handler.codec.DecoderException;

/** A request carried both Content-Length and Transfer-Encoding: two framings, so never forwarded. */
public final class RequestSmugglingException extends DecoderException {

    private static final long serialVersionUID = 1L;

    public RequestSmugglingException() {
        super("request has both Content-Length and Transfer-Encoding");
    }
}
