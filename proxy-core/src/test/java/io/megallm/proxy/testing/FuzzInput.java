package io.megallm.proxy.testing;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A fuzz input for an incremental parser: two control bytes, then the bytes on the wire. The
 * control bytes let the fuzzer choose how the wire bytes are cut into reads, so coverage
 * guidance reaches the states a parser is left in between reads. They come first (rather than
 * through a {@code FuzzedDataProvider}, which takes its numbers from the end) so a seed file
 * stays readable: two printable characters, then a plain HTTP message.
 *
 * <ul>
 *   <li>byte 0: where a single cut falls, scaled to the message's length (0: before the first
 *       byte, 255: after the last);</li>
 *   <li>byte 1: the size of every read in the many-reads feeding, {@code 1 + (b & 63)}
 *       (so {@code '@'} and {@code 0x00} feed one byte at a time); its bit 6 is a free
 *       {@link #flag} a test may use (the response parser: the request was a HEAD).</li>
 * </ul>
 */
public final class FuzzInput {

    public final byte[] wire;
    /** Where the wire bytes are cut into two reads, 0..wire.length. */
    public final int cut;
    /** The size of each read when the wire bytes arrive in many reads. */
    public final int piece;
    public final boolean flag;

    private FuzzInput(byte[] wire, int cut, int piece, boolean flag) {
        this.wire = wire;
        this.cut = cut;
        this.piece = piece;
        this.flag = flag;
    }

    public static FuzzInput of(byte[] data) {
        if (data.length < 2) {
            return new FuzzInput(new byte[0], 0, 1, false);
        }
        byte[] wire = Arrays.copyOfRange(data, 2, data.length);
        int cut = (int) ((long) (data[0] & 0xff) * wire.length / 255);
        int piece = 1 + (data[1] & 63);
        return new FuzzInput(wire, cut, piece, (data[1] & 0x40) != 0);
    }

    /**
     * The three ways the wire bytes are fed: whole, in two reads at {@link #cut}, in reads of
     * {@link #piece} bytes. No read is empty: a socket never delivers an empty read.
     */
    public List<List<byte[]>> feedings() {
        List<List<byte[]>> all = new ArrayList<>();
        all.add(reads(wire.length));
        all.add(reads(cut));
        List<byte[]> pieces = new ArrayList<>();
        for (int at = 0; at < wire.length; at += piece) {
            pieces.add(Arrays.copyOfRange(wire, at, Math.min(wire.length, at + piece)));
        }
        all.add(pieces);
        return all;
    }

    /** The wire bytes in two reads cut at {@code at}, leaving out an empty one. */
    private List<byte[]> reads(int at) {
        List<byte[]> reads = new ArrayList<>();
        if (at > 0) {
            reads.add(Arrays.copyOfRange(wire, 0, at));
        }
        if (at < wire.length) {
            reads.add(Arrays.copyOfRange(wire, at, wire.length));
        }
        return reads;
    }

    /** How a feeding cuts the bytes, for assertion messages. */
    public static String describe(List<byte[]> reads) {
        StringBuilder b = new StringBuilder("reads of ");
        for (byte[] r : reads) {
            b.append(r.length).append(' ');
        }
        return b.toString().trim();
    }
}
