package io.megallm.proxy.http;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.CompositeByteBuf;
import io.netty.buffer.Unpooled;

/**
 * One request body while it arrives, as few buffers as its bytes need: a body that comes in one
 * piece stays the received slice (no copy), large pieces are kept as slices, small ones are copied
 * into one growing buffer of our own, and never more than {@link #MAX_COMPONENTS} pieces in all.
 * A slice costs a buffer object (and pins the read buffer it came from), so a body of a million
 * 1-byte chunks kept as slices cost a hundred times its size in heap; copied, it costs its bytes.
 * Only the connection's event loop uses it.
 */
final class RequestBody {

    /** Pieces smaller than this are copied; larger ones are worth a component of their own. */
    static final int COPY_BELOW = 8 * 1024;
    static final int MAX_COMPONENTS = 16;

    private final ByteBufAllocator alloc;
    private final long maxBytes;
    /** Pieces that are complete, in order; null while there are fewer than two. */
    private CompositeByteBuf sealed;
    /** The latest piece: a received slice, or our own buffer that small pieces are copied into. */
    private ByteBuf last;
    private boolean lastIsOurs;
    private long bytes;

    RequestBody(ByteBufAllocator alloc, long maxBytes) {
        this.alloc = alloc;
        this.maxBytes = maxBytes;
    }

    long bytes() {
        return bytes;
    }

    /** Moves {@code length} bytes from {@code in} into the body; the caller has checked the limit. */
    void append(ByteBuf in, int length) {
        if (length == 0) {
            return;
        }
        bytes += length;
        if (last == null) {
            // Zero-copy fast path: most bodies arrive whole in one read and stay that slice.
            last = in.readRetainedSlice(length);
            lastIsOurs = false;
            return;
        }
        // Room for one more kept slice while a last own buffer still fits under the cap.
        boolean room = componentCount() + 2 <= MAX_COMPONENTS;
        if (lastIsOurs) {
            if (length < COPY_BELOW || !room) {
                last.writeBytes(in, length);
                return;
            }
            seal();
            last = in.readRetainedSlice(length);
            lastIsOurs = false;
            return;
        }
        if (last.readableBytes() < COPY_BELOW) {
            // A small first piece is no longer the whole body: it starts our own buffer.
            ByteBuf own = ownBuffer(last.readableBytes() + length);
            own.writeBytes(last);
            last.release();
            last = own;
            lastIsOurs = true;
            own.writeBytes(in, length);
            return;
        }
        if (length < COPY_BELOW || !room) {
            seal();
            last = ownBuffer(length);
            lastIsOurs = true;
            last.writeBytes(in, length);
            return;
        }
        seal();
        last = in.readRetainedSlice(length);
    }

    /**
     * Hands the whole body over (the caller owns it) and starts a new, empty one. A buffer of our
     * own grows by doubling from the piece that started it, so memory follows the bytes received,
     * never a declared Content-Length that may never come.
     */
    ByteBuf take() {
        ByteBuf body;
        if (sealed != null) {
            if (last != null) {
                sealed.addComponent(true, last);
            }
            body = sealed;
        } else {
            body = last != null ? last : Unpooled.EMPTY_BUFFER;
        }
        sealed = null;
        last = null;
        lastIsOurs = false;
        bytes = 0;
        return body;
    }

    /** Drops an unfinished body. */
    void release() {
        if (sealed != null) {
            sealed.release();
            sealed = null;
        }
        if (last != null) {
            last.release();
            last = null;
        }
        lastIsOurs = false;
        bytes = 0;
    }

    private int componentCount() {
        return (sealed == null ? 0 : sealed.numComponents()) + (last == null ? 0 : 1);
    }

    private void seal() {
        if (sealed == null) {
            sealed = alloc.compositeBuffer(MAX_COMPONENTS);
        }
        sealed.addComponent(true, last);
        last = null;
    }

    private ByteBuf ownBuffer(int initial) {
        int max = (int) Math.min(Integer.MAX_VALUE, maxBytes);
        return alloc.buffer(Math.min(initial, max), Math.max(initial, max));
    }
}
