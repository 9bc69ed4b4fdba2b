package io.megallm.proxy.relay;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.ByteBufInputStream;

import java.io.IOException;
import java.io.InputStream;
import java.util.Locale;
import java.util.zip.GZIPInputStream;
import java.util.zip.Inflater;
import java.util.zip.InflaterInputStream;

/**
 * The body of a kept upstream answer in plain bytes, so that the keys in it can be masked. The
 * upstream is asked for {@code identity}, but one that compresses all the same must not carry a
 * pool key past the mask inside a gzip body. Bounded: a small body that inflates past the cap
 * (a zip bomb) is given up, not inflated whole.
 */
final class ContentDecoding {

    /** What {@link #decode} found. */
    enum Outcome { PLAIN, DECODED, TOO_LARGE, UNREADABLE }

    record Result(Outcome outcome, ByteBuf body) { }

    private ContentDecoding() {
    }

    /**
     * {@code body} decoded by {@code coding} (a Content-Encoding value; null or identity: as it
     * is). The caller keeps {@code body}; a DECODED result's buffer is the caller's to release.
     */
    static Result decode(String coding, ByteBuf body, int max, ByteBufAllocator alloc) {
        // A list (one field "identity, gzip", or several fields joined) is read as its codings
        // besides identity: one that this reads, or none.
        String c = "";
        for (String element : (coding == null ? "" : coding).split(",")) {
            String e = element.strip().toLowerCase(Locale.ROOT);
            if (e.isEmpty() || e.equals("identity")) {
                continue;
            }
            if (!c.isEmpty()) {
                return new Result(Outcome.UNREADABLE, null);
            }
            c = e;
        }
        if (c.isEmpty()) {
            return new Result(Outcome.PLAIN, null);
        }
        boolean gzip = c.equals("gzip") || c.equals("x-gzip");
        if (!gzip && !c.equals("deflate")) {
            // br, zstd, a list of codings: nothing here reads them, so nothing here can vouch for them.
            return new Result(Outcome.UNREADABLE, null);
        }
        Result r = inflate(body, gzip, false, max, alloc);
        if (r.outcome() == Outcome.UNREADABLE && !gzip) {
            // "deflate" is the zlib format (RFC 9110 §8.4.1.2), but some servers send raw deflate.
            r = inflate(body, false, true, max, alloc);
        }
        return r;
    }

    private static Result inflate(ByteBuf body, boolean gzip, boolean raw, int max, ByteBufAllocator alloc) {
        ByteBuf out = alloc.heapBuffer(Math.min(max, Math.max(512, body.readableBytes() * 4)), max + 1);
        Inflater inflater = gzip ? null : new Inflater(raw);
        try (InputStream in = gzip ? new GZIPInputStream(new ByteBufInputStream(body.duplicate(), false))
                : new InflaterInputStream(new ByteBufInputStream(body.duplicate(), false), inflater)) {
            byte[] chunk = new byte[8192];
            int n;
            while ((n = in.read(chunk)) > 0) {
                if (out.readableBytes() + n > max) {
                    out.release();
                    return new Result(Outcome.TOO_LARGE, null);
                }
                out.writeBytes(chunk, 0, n);
            }
            return new Result(Outcome.DECODED, out);
        } catch (IOException | RuntimeException e) {
            out.release();
            return new Result(Outcome.UNREADABLE, null);
        } finally {
            if (inflater != null) {
                inflater.end();
            }
        }
    }
}
