package io.megallm.proxy.http;

import io.netty.handler.codec.http.HttpDecoderConfig;
import io.netty.handler.codec.http.HttpMessage;
import io.netty.handler.codec.http.HttpRequestDecoder;

/**
 * Netty's default, per RFC 7230, is to drop Content-Length when Transfer-Encoding is present
 * and go on. A proxy must not: the next hop may frame the body the other way (request
 * smuggling). This decoder fails such a request instead, and the reader answers 400.
 */
public final class StrictRequestDecoder extends HttpRequestDecoder {

    public StrictRequestDecoder(HttpDecoderConfig config) {
        super(config);
    }

    @Override
    protected void handleTransferEncodingChunkedWithContentLength(HttpMessage message) {
        throw new RequestSmugglingException();
    }
}
