package io.megallm.proxy.server.access;

import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.encoder.EncoderBase;

import java.nio.charset.StandardCharsets;

/**
 * Writes an {@link AccessLog} batch as it is: {@link AccessLines} carries the UTF-8 bytes of whole
 * lines, newlines included, and every appender gets that one array. Any other event's message is
 * taken as one byte per char. A pattern layout would copy the batch twice more and transcode it.
 */
public final class AccessLineEncoder extends EncoderBase<ILoggingEvent> {

    @Override
    public byte[] headerBytes() {
        return null;
    }

    @Override
    public byte[] encode(ILoggingEvent event) {
        if (event instanceof AccessLines lines) {
            return lines.bytes();
        }
        return event.getFormattedMessage().getBytes(StandardCharsets.ISO_8859_1);
    }

    @Override
    public byte[] footerBytes() {
        return null;
    }
}
