package io.megallm.proxy.key;

/** What a reset returned to rotation. */
public record ResetResult(int reset, int total, int available) {
}
