package io.megallm.proxy.usage;

import io.netty.buffer.ByteBuf;
import io.netty.util.ByteProcessor;
import io.netty.util.concurrent.FastThreadLocal;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

/**
 * Reads the upstream's own token counts out of an answer's bytes as they are relayed (contract
 * §13): the top-level {@code usage} object of a JSON answer, or of each event of an SSE stream
 * (the last one with a {@code usage} object wins, field by field; OpenAI sends it in the final
 * event when the client asked for {@code stream_options.include_usage}). The Responses API's and
 * Anthropic's names are read too ({@code input_tokens}, {@code output_tokens},
 * {@code input_tokens_details.cached_tokens}; Anthropic's {@code cache_read_input_tokens} and
 * {@code cache_creation_input_tokens}, which it counts apart from its input, are added to the
 * prompt), and so is a usage object one level down in
 * {@code response} or {@code message} (their stream events): otherwise a client could leave its
 * token limits behind by asking another API. The bytes are only read, never changed
 * (a direct buffer's are copied into a per-thread window to be read), and a {@code usage} split
 * across two reads is found as well as a whole one: the scanner is a small state machine over
 * single bytes that keeps its place between calls.
 *
 * <p>It follows JSON's structure (strings with their escapes, nesting), so a word "usage"
 * inside a message's text is never taken for the field. Outside a JSON object (SSE's
 * {@code data: } prefixes, {@code [DONE]}, blank lines) every byte but an opening brace is
 * ignored, and each top-level object starts afresh. One scanner per answer; no allocation after
 * construction (but for each thread's window, once).
 */
public final class UsageScanner implements ByteProcessor {

    /** Deeper than the usage object's own fields is never of interest, only counted. */
    private static final int MAX_TRACKED_DEPTH = 4;
    private static final int KEY_CAPACITY = 32;

    private static final byte OTHER = 0;
    private static final byte USAGE = 1;
    private static final byte PROMPT = 2;
    private static final byte COMPLETION = 3;
    private static final byte DETAILS = 4;
    private static final byte CACHED = 5;
    /** {@code response} (the Responses API's stream events) or {@code message} (Anthropic's {@code message_start}). */
    private static final byte WRAPPER = 6;
    /** Anthropic's {@code cache_read_input_tokens}: input read from its prompt cache, not in its {@code input_tokens}. */
    private static final byte CACHE_READ = 7;
    /** Anthropic's {@code cache_creation_input_tokens}: input written to the cache, not in {@code input_tokens} either. */
    private static final byte CACHE_WRITE = 8;
    /** OpenAI's {@code prompt_tokens}: it includes cached input, so cache counts beside it are not added. */
    private static final byte PROMPT_ALL = 9;

    private static final byte[] USAGE_NAME = ascii("usage");
    private static final byte[] PROMPT_NAME = ascii("prompt_tokens");
    private static final byte[] COMPLETION_NAME = ascii("completion_tokens");
    private static final byte[] DETAILS_NAME = ascii("prompt_tokens_details");
    private static final byte[] CACHED_NAME = ascii("cached_tokens");
    // The Responses API (and Anthropic's Messages API) name the same counts otherwise.
    private static final byte[] INPUT_NAME = ascii("input_tokens");
    private static final byte[] OUTPUT_NAME = ascii("output_tokens");
    private static final byte[] INPUT_DETAILS_NAME = ascii("input_tokens_details");
    private static final byte[] RESPONSE_NAME = ascii("response");
    private static final byte[] MESSAGE_NAME = ascii("message");
    private static final byte[] CACHE_READ_NAME = ascii("cache_read_input_tokens");
    private static final byte[] CACHE_WRITE_NAME = ascii("cache_creation_input_tokens");

    private static byte[] ascii(String name) {
        return name.getBytes(java.nio.charset.StandardCharsets.US_ASCII);
    }

    // Chunked framing, when the relayed bytes carry the upstream's own chunk lines.
    private static final int CHUNK_SIZE = 0;
    private static final int CHUNK_DATA = 1;
    private static final int CHUNK_DATA_END = 2;
    private static final int CHUNK_TRAILER = 3;
    private final boolean chunked;
    private int chunkState = CHUNK_SIZE;
    private long chunkLeft;
    private boolean chunkExtension;

    /** Nesting: 0 outside any value; 1 inside a top-level object; arrays count too. */
    private int depth;
    // What a container can hold of ours: the top-level object (usage, response, message), a
    // response/message (usage), a usage object (the counts, the details), its details (cached).
    private static final byte NONE = 0;
    private static final byte TOP = 1;
    private static final byte IN_WRAPPER = 2;
    private static final byte IN_USAGE = 3;
    private static final byte IN_DETAILS = 4;
    /** For each tracked depth, what its container can hold; deeper, nothing (the deepest of ours is 4). */
    private final byte[] kinds = new byte[MAX_TRACKED_DEPTH + 1];
    /**
     * What the container the scanner is in can hold: {@code kinds[depth]}, kept in a field so that
     * the scan loop's test is one load (a longer test there cost the embeddings answer a third
     * more time: C2 inlines less of the loop).
     */
    private byte container = NONE;
    private boolean inString;
    private boolean escaped;
    /** The current string's first bytes, to recognise a key; longer strings are never keys of ours. */
    private final byte[] text = new byte[KEY_CAPACITY];
    private int textLength;
    /** The last complete string, which becomes the key if a colon follows. */
    private byte lastString = OTHER;
    /** The key whose value comes next (after its colon), or -1 while none does. */
    private int valueOf = -1;
    private boolean inNumber;
    /** The number's significant digits (its point and exponent aside): at most 18 of them. */
    private long number;
    private byte numberKey;
    // A count is a JSON number, and JSON allows 1.2345678E7 for 12,345,678: the value is
    // number × 10^(±exponent − numberScale), read as the number ends.
    private static final byte INTEGER = 0;
    private static final byte FRACTION = 1;
    private static final byte EXPONENT_SIGN = 2;
    private static final byte EXPONENT = 3;
    private byte numberPart;
    /** Digits kept after the point, less integer digits past the significant ones. */
    private int numberScale;
    private int exponent;
    private boolean exponentNegative;

    // The usage object being read, and the last complete one. A count may come under both its
    // names (new-api writes every name of one Go struct, 0 for the other API's): the larger wins.
    /** {@code prompt_tokens}, which includes cached input. */
    private long prompt = -1;
    /** {@code input_tokens}, which in Anthropic's usage does not. */
    private long input = -1;
    private long completion = -1;
    private long cached = -1;
    private long cacheRead = -1;
    private long cacheWrite = -1;
    private boolean foundPromptAll;
    private boolean found;
    private long foundPrompt;
    private long foundCompletion;
    private long foundCached;
    private long foundCacheRead;
    private long foundCacheWrite;
    /** Top-level documents begun: the answer, or each SSE event (a JSON stream's every event is one). */
    private int documents;

    /** A scanner of plain body bytes. */
    public UsageScanner() {
        this(false);
    }

    /**
     * {@code chunked}: the bytes are the upstream's chunked framing as received (the relay passes
     * chunks through unchanged), so chunk lines are skipped and only chunk data is read.
     */
    public UsageScanner(boolean chunked) {
        this.chunked = chunked;
    }

    /** Bytes of a direct buffer are scanned in copies of at most this many (one per thread, reused). */
    static final int WINDOW = 4096;
    // A FastThreadLocal, as JsonBodyCheck's scratch array: on an event loop's thread it is an array index.
    private static final FastThreadLocal<byte[]> WINDOWS = new FastThreadLocal<>() {
        @Override
        protected byte[] initialValue() {
            return new byte[WINDOW];
        }
    };
    private static final VarHandle LONGS = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);

    /**
     * Scans the readable bytes of {@code bytes} without moving its indices. The same machine as
     * {@link #process}, but the inside of a JSON string, where most of an answer's bytes are, is
     * crossed eight bytes a step instead of byte by byte, and so is every stretch where only
     * structure counts ({@link #structureOnly}).
     *
     * <p>It reads a byte array, not the buffer: a direct buffer (what the socket fills) is copied
     * into a per-thread window of {@link #WINDOW} bytes first. Each read through {@code ByteBuf}
     * checks the index and the reference count, and an answer costs dozens of short reads (a
     * string's end, the next bracket), so the scan of the mock's 594-byte chat answer was ~0.85 µs,
     * 6 % of the proxy's CPU per request, mostly those checks; one copy costs less than a few of them.
     */
    public void scan(ByteBuf bytes) {
        int from = bytes.readerIndex();
        int end = bytes.writerIndex();
        if (bytes.hasArray()) {
            int offset = bytes.arrayOffset();
            scan(bytes.array(), offset + from, offset + end);
            return;
        }
        byte[] window = WINDOWS.get();
        while (from < end) {
            int n = Math.min(window.length, end - from);
            bytes.getBytes(from, window, 0, n);
            scan(window, 0, n);
            from += n;
        }
    }

    private void scan(byte[] a, int i, int end) {
        while (i < end) {
            if (!chunked) {
                json(a, i, end);
                i = end;
            } else if (chunkState == CHUNK_DATA) {
                int to = (int) Math.min(end, i + chunkLeft);
                json(a, i, to);
                chunkLeft -= to - i;
                if (chunkLeft == 0) {
                    chunkState = CHUNK_DATA_END;
                }
                i = to;
            } else {
                process(a[i++]);
            }
        }
    }

    /** JSON bytes from {@code i} up to {@code to}. */
    private void json(byte[] a, int i, int to) {
        while (i < to) {
            if (!inString) {
                if (structureOnly()) {
                    i = nextStructural(a, i, to);
                    if (i < 0) {
                        return;
                    }
                }
                json(a[i++]);
                continue;
            }
            if (escaped) {
                json(a[i++]);
                continue;
            }
            int stop = stringStop(a, i, to);
            text(a, i, stop);
            i = stop;
            if (stop < to) {
                if (a[stop] == '"') {
                    string((byte) '"');
                } else {
                    escaped = true;
                }
                i++;
            }
        }
    }

    /**
     * True where no byte but a quote, a brace or a bracket can change what the machine finds:
     * between documents, inside an array, or deeper than any field of ours. There no key of ours is
     * ever waiting for its value (only a colon in an object at most that deep names one), so
     * numbers, commas, colons and spaces are no-ops, and {@code lastString} is set again before
     * anything reads it. An embeddings answer is almost all such bytes (arrays of numbers at depth
     * four), and byte by byte they cost ~4 ns each: 96 % of the proxy's CPU on a 32 MiB answer.
     */
    private boolean structureOnly() {
        return !inNumber && container == NONE;
    }

    private static final long ONES = 0x0101010101010101L;
    private static final long LOW7 = 0x7F7F7F7F7F7F7F7FL;
    private static final long QUOTES = ONES * '"';
    private static final long BACKSLASHES = ONES * '\\';
    private static final long SPACES = ONES * 0x20;
    private static final long OPENS = ONES * '{';
    private static final long CLOSES = ONES * '}';

    /**
     * The index of the first quote, brace or bracket in {@code [i, to)}, or -1: eight bytes a
     * step. A bracket is its brace with bit 0x20 clear ('[' 0x5B, '{' 0x7B), so one OR folds the
     * two into one comparison.
     */
    static int nextStructural(byte[] a, int i, int to) {
        // In a chat answer the next one is mostly a byte or two away (after a colon, between brackets).
        for (int near = Math.min(to, i + 2); i < near; i++) {
            if (structural(a[i])) {
                return i;
            }
        }
        for (; i + Long.BYTES <= to; i += Long.BYTES) {
            long hits = hits((long) LONGS.get(a, i));
            if (hits != 0) {
                return i + (Long.numberOfTrailingZeros(hits) >>> 3);
            }
        }
        for (; i < to; i++) {
            if (structural(a[i])) {
                return i;
            }
        }
        return -1;
    }

    /** The index of the first quote or backslash in {@code [i, to)}, or {@code to}: where a string's plain bytes stop. */
    static int stringStop(byte[] a, int i, int to) {
        // Keys and short values end within a few bytes; only long text is worth the wide steps.
        for (int near = Math.min(to, i + 8); i < near; i++) {
            byte b = a[i];
            if (b == '"' || b == '\\') {
                return i;
            }
        }
        for (; i + Long.BYTES <= to; i += Long.BYTES) {
            long w = (long) LONGS.get(a, i);
            long hits = zeroBytes(w ^ QUOTES) | zeroBytes(w ^ BACKSLASHES);
            if (hits != 0) {
                return i + (Long.numberOfTrailingZeros(hits) >>> 3);
            }
        }
        for (; i < to; i++) {
            byte b = a[i];
            if (b == '"' || b == '\\') {
                return i;
            }
        }
        return to;
    }

    /** 0x80 in every byte of {@code w} that is a quote, a brace or a bracket. */
    private static long hits(long w) {
        long folded = w | SPACES;
        return zeroBytes(w ^ QUOTES) | zeroBytes(folded ^ OPENS) | zeroBytes(folded ^ CLOSES);
    }

    private static boolean structural(byte b) {
        int folded = b | 0x20;
        return b == '"' || folded == '{' || folded == '}';
    }

    /** 0x80 in every byte of {@code x} that is zero and nothing elsewhere (exact: no borrow between bytes). */
    private static long zeroBytes(long x) {
        long t = (x & LOW7) + LOW7;
        return ~(t | x | LOW7);
    }

    /** The string's bytes from {@code from} to {@code to}, none of them a quote or a backslash. */
    private void text(byte[] a, int from, int to) {
        int n = to - from;
        if (n <= 0) {
            return;
        }
        if (textLength < KEY_CAPACITY) {
            System.arraycopy(a, from, text, textLength, Math.min(n, KEY_CAPACITY - textLength));
        }
        // Only whether it outgrew the capacity matters once it has; the cap keeps an endless string from wrapping.
        textLength = (int) Math.min((long) textLength + n, KEY_CAPACITY + 1);
    }

    /**
     * JSON documents begun in the bytes so far: 1 for a JSON answer, one per event of a stream. A
     * stream cut before its usage has generated at least about this many tokens (an event carries
     * a token or more, but for the first and last few).
     */
    public int documents() {
        return documents;
    }

    /** True once a whole {@code usage} object with token counts has been read. */
    public boolean found() {
        return found;
    }

    /**
     * The prompt's tokens, cached ones included, as OpenAI's {@code prompt_tokens} counts them.
     * Anthropic counts its cache reads and writes apart from {@code input_tokens}, so they are added
     * here: a client that caches a 50,000-token prompt (an agent resends its context every turn)
     * must not count as the few tokens after the cache point against its {@code tpm}.
     */
    public long promptTokens() {
        return foundPromptAll ? foundPrompt : foundPrompt + foundCacheRead + foundCacheWrite;
    }

    public long completionTokens() {
        return foundCompletion;
    }

    /** {@code prompt_tokens_details.cached_tokens} (Anthropic: {@code cache_read_input_tokens}), 0 when the answer did not say. */
    public long cachedTokens() {
        return foundPromptAll ? Math.max(foundCached, foundCacheRead) : foundCached + foundCacheRead;
    }

    @Override
    public boolean process(byte b) {
        if (!chunked) {
            return json(b);
        }
        switch (chunkState) {
            case CHUNK_SIZE -> {
                if (b == '\n') {
                    chunkState = chunkLeft == 0 ? CHUNK_TRAILER : CHUNK_DATA;
                    chunkExtension = false;
                } else if (b == ';') {
                    chunkExtension = true;
                } else if (!chunkExtension) {
                    int d = Character.digit(b, 16);
                    if (d >= 0 && chunkLeft < (1L << 56)) {
                        chunkLeft = chunkLeft << 4 | d;
                    }
                }
                return true;
            }
            case CHUNK_DATA -> {
                if (--chunkLeft == 0) {
                    chunkState = CHUNK_DATA_END;
                }
                return json(b);
            }
            case CHUNK_DATA_END -> {
                if (b == '\n') {
                    chunkState = CHUNK_SIZE;
                }
                return true;
            }
            default -> {
                return true;
            }
        }
    }

    private boolean json(byte b) {
        if (inString) {
            string(b);
            return true;
        }
        if (inNumber && digit(b)) {
            return true;
        }
        switch (b) {
            case '"' -> {
                if (depth > 0) {
                    inString = true;
                    textLength = 0;
                }
            }
            case '{' -> open(true);
            case '[' -> {
                if (depth > 0) {
                    open(false);
                }
            }
            case '}', ']' -> close();
            case ':' -> {
                if (container != NONE) {
                    valueOf = lastString;
                }
                lastString = OTHER;
            }
            case ',' -> {
                valueOf = -1;
                lastString = OTHER;
            }
            case ' ', '\t', '\r', '\n' -> {
            }
            default -> value(b);
        }
        return true;
    }

    // digit and value are apart from json(byte) to keep it small enough for C2 to inline into the scan loop.

    /** No answer has that many tokens: a hostile upstream gets no overflow out of us. */
    private static final long MAX_COUNT = 1_000_000_000_000L;
    private static final long SIGNIFICANT = 100_000_000_000_000_000L;
    private static final int MAX_EXPONENT = 10_000;

    /** A byte of the number being read: true if it was part of it, else the number ends here. */
    private boolean digit(byte b) {
        if (b >= '0' && b <= '9') {
            if (numberPart >= EXPONENT_SIGN) {
                numberPart = EXPONENT;
                exponent = Math.min(exponent * 10 + (b - '0'), MAX_EXPONENT);
            } else if (number < SIGNIFICANT) {
                number = number * 10 + (b - '0');
                if (numberPart == FRACTION) {
                    numberScale++;
                }
            } else if (numberPart == INTEGER && numberScale > -MAX_EXPONENT) {
                // A digit past the significant ones: the value is ten times larger.
                numberScale--;
            }
            return true;
        }
        if (b == '.' && numberPart == INTEGER) {
            numberPart = FRACTION;
            return true;
        }
        if ((b == 'e' || b == 'E') && numberPart <= FRACTION) {
            numberPart = EXPONENT_SIGN;
            return true;
        }
        if ((b == '+' || b == '-') && numberPart == EXPONENT_SIGN) {
            exponentNegative = b == '-';
            numberPart = EXPONENT;
            return true;
        }
        inNumber = false;
        endNumber();
        return false;
    }

    /** The number just read, whole tokens (a fraction is cut), at most {@link #MAX_COUNT}. */
    private long numberValue() {
        int shift = (exponentNegative ? -exponent : exponent) - numberScale;
        long v = number;
        for (; shift < 0 && v > 0; shift++) {
            v /= 10;
        }
        for (; shift > 0 && v > 0 && v < MAX_COUNT; shift--) {
            v *= 10;
        }
        return Math.min(v, MAX_COUNT);
    }

    /** The first byte of a value that is not a string or a container. */
    private void value(byte b) {
        if (b >= '0' && b <= '9' && valueOf >= 0) {
            inNumber = true;
            number = b - '0';
            numberKey = (byte) valueOf;
            numberPart = INTEGER;
            numberScale = 0;
            exponent = 0;
            exponentNegative = false;
        }
        valueOf = -1;
    }

    private void string(byte b) {
        if (escaped) {
            escaped = false;
            textLength = KEY_CAPACITY + 1;
            return;
        }
        if (b == '\\') {
            escaped = true;
            return;
        }
        if (b == '"') {
            inString = false;
            lastString = textLength <= KEY_CAPACITY ? name() : OTHER;
            valueOf = -1;
            return;
        }
        if (textLength < KEY_CAPACITY) {
            text[textLength] = b;
        }
        textLength++;
    }

    /**
     * Which of our names the string just read is, by where it stands: {@code usage} at the top
     * level or inside a top-level {@code response}/{@code message}, its counts, and the cached
     * count in its details. The Responses API's and Anthropic's names map to the same ids.
     */
    private byte name() {
        return switch (container) {
            case TOP -> equalsText(USAGE_NAME) ? USAGE
                    : equalsText(RESPONSE_NAME) || equalsText(MESSAGE_NAME) ? WRAPPER : OTHER;
            case IN_WRAPPER -> equalsText(USAGE_NAME) ? USAGE : OTHER;
            case IN_USAGE -> usageField();
            case IN_DETAILS -> equalsText(CACHED_NAME) ? CACHED : OTHER;
            default -> OTHER;
        };
    }

    /** A field of a usage object. */
    private byte usageField() {
        if (equalsText(PROMPT_NAME)) {
            return PROMPT_ALL;
        }
        if (equalsText(INPUT_NAME)) {
            return PROMPT;
        }
        if (equalsText(COMPLETION_NAME) || equalsText(OUTPUT_NAME)) {
            return COMPLETION;
        }
        if (equalsText(DETAILS_NAME) || equalsText(INPUT_DETAILS_NAME)) {
            return DETAILS;
        }
        return equalsText(CACHE_READ_NAME) ? CACHE_READ : equalsText(CACHE_WRITE_NAME) ? CACHE_WRITE : OTHER;
    }

    private boolean equalsText(byte[] n) {
        if (n.length != textLength) {
            return false;
        }
        for (int i = 0; i < n.length; i++) {
            if (n[i] != text[i]) {
                return false;
            }
        }
        return true;
    }

    private void open(boolean object) {
        byte via = valueOf >= 0 ? (byte) valueOf : OTHER;
        valueOf = -1;
        lastString = OTHER;
        if (depth == 0) {
            // A new top-level document (the answer, or the next SSE event).
            via = OTHER;
            if (documents < Integer.MAX_VALUE) {
                documents++;
            }
        }
        if (depth == Integer.MAX_VALUE) {
            // 2 GiB of opening brackets from a broken upstream would wrap the count into a negative
            // index; that deep, nothing is of interest and a stray close changes nothing that matters.
            return;
        }
        depth++;
        // name() gives each of these only in the container where it stands, so the key suffices.
        byte kind = !object || depth > MAX_TRACKED_DEPTH ? NONE
                : depth == 1 ? TOP
                : via == USAGE ? IN_USAGE
                : via == WRAPPER ? IN_WRAPPER
                : via == DETAILS ? IN_DETAILS : NONE;
        if (depth <= MAX_TRACKED_DEPTH) {
            kinds[depth] = kind;
        }
        container = kind;
        if (kind == IN_USAGE) {
            prompt = -1;
            input = -1;
            completion = -1;
            cached = -1;
            cacheRead = -1;
            cacheWrite = -1;
        }
    }

    private void close() {
        if (depth == 0) {
            return;
        }
        if (container == IN_USAGE && (prompt >= 0 || input >= 0 || completion >= 0)) {
            // A later usage object says what it says and leaves the rest: Anthropic's stream sends
            // the input count at its start and only the output count in its last event.
            found = true;
            if (prompt >= 0 || input >= 0) {
                foundPromptAll = prompt >= input;
                foundPrompt = Math.max(prompt, input);
            }
            if (completion >= 0) {
                foundCompletion = completion;
            }
            if (cached >= 0) {
                foundCached = cached;
            }
            if (cacheRead >= 0) {
                foundCacheRead = cacheRead;
            }
            if (cacheWrite >= 0) {
                foundCacheWrite = cacheWrite;
            }
        }
        depth--;
        container = depth >= 1 && depth <= MAX_TRACKED_DEPTH ? kinds[depth] : NONE;
        valueOf = -1;
        lastString = OTHER;
    }

    private void endNumber() {
        if (numberKey == OTHER) {
            return;
        }
        long number = numberValue();
        switch (numberKey) {
            case PROMPT -> input = Math.max(input, number);
            case PROMPT_ALL -> prompt = Math.max(prompt, number);
            case COMPLETION -> completion = Math.max(completion, number);
            case CACHED -> cached = number;
            case CACHE_READ -> cacheRead = number;
            case CACHE_WRITE -> cacheWrite = number;
            default -> { }
        }
    }
}
