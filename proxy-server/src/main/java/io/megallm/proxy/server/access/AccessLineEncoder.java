package io.megallm.proxy.server.access;

import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.encoder.EncoderBase;

import java.nio.charset.StandardCharsets;

/**
 * Writes an {@link AccessLog} event as it is: its message is already the UTF-8 bytes of whole
 * lines, newlines included, one byte per char, so ISO-8859-1 gives those bytes back with one copy.
 * A pattern layout would copy the batch twice more and transcode it.
 */
public final class AccessLineEncoder extends EncoderBase<ILoggingEvent> {

    @Override
    public byte[] headerBytes() {
        return null;
    }

    @Override
    public byte[] encode(ILoggingEvent event) {
        return event.getFormattedMessage().getBytes(StandardCharsets.ISO_8859_1);
    }

    @Override
    public byte[] footerBytes() {
        return null;
    }
}
