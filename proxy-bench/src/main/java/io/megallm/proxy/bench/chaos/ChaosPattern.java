package io.megallm.proxy.bench.chaos;

/**
 * What one chaos client does. {@code checked}: its answer must be right (the well-behaved
 * traffic, and the 1-byte-chunk body, which is valid HTTP and must be served like any other).
 * {@code perSecond}: sessions started per second at scale 1; the holding patterns are sized so
 * that, against a proxy that never cuts them, about 1,500 connections are open at once.
 */
public enum ChaosPattern {
    CHAT(true, 40, "non-streaming chats, 1-3 per keep-alive connection, body checked byte for byte"),
    STREAM(true, 15, "SSE streams read to the end: every event and the closing `data: [DONE]` checked"),
    ONE_BYTE_CHUNKS(true, 2, "a valid chat whose chunked body comes as ~3,000 chunks of 1 byte"),
    SLOW_HEAD(false, 25, "slowloris head: one byte of the request head every 400 ms, never finished"),
    SLOW_BODY(false, 15, "slowloris body: full head, then 5 body bytes per CLIENT_BODY_TIMEOUT + 1 s"),
    IDLE_KEEPALIVE(false, 25, "one checked chat, then the keep-alive connection stays idle"),
    STALLED_READER(false, 4, "opens a fast stream (~100 KB/s), reads the head, then stops reading"),
    VANISH_STREAM(false, 8, "reads 1-5 events of a long stream, then closes (half of them with a reset)"),
    VANISH_WAITING(false, 5, "sends a chat the upstream answers after 2.9 s, leaves after 0.1-0.6 s"),
    CONNECT_CLOSE(false, 40, "connects and closes at once (half with a reset), in bursts");

    final boolean checked;
    final double perSecond;
    final String description;

    ChaosPattern(boolean checked, double perSecond, String description) {
        this.checked = checked;
        this.perSecond = perSecond;
        this.description = description;
    }

    public String description() {
        return description;
    }

    public boolean checked() {
        return checked;
    }

    public double perSecond() {
        return perSecond;
    }
}
