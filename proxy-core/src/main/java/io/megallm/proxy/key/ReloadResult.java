package io.megallm.proxy.key;

/** What a reload changed. */
public record ReloadResult(int total, int added, int removed, int kept) {
}
