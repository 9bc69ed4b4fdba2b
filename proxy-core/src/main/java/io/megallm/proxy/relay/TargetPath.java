package io.megallm.proxy.relay;

/**
 * Decides whether a client's request target may go upstream under the base path (contract §6).
 * The upstream decodes and normalises what it receives, so {@code /v1/../x} or
 * {@code /v1/%2e%2e/x} would reach paths outside the base path while carrying a pool key; an
 * encoded slash ({@code %2F}) can do the same behind a normalising front. Backslashes (raw or
 * {@code %5C}) are refused too: some servers read them as slashes. The query string is not a
 * path and is not looked at.
 */
final class TargetPath {

    private TargetPath() {
    }

    /** True when the path part of {@code target} has no dot-segment, encoded slash or backslash. */
    static boolean safe(String target) {
        int end = target.indexOf('?');
        if (end < 0) {
            end = target.length();
        }
        int segmentStart = 0;
        int dots = 0;
        boolean onlyDots = true;
        for (int i = 0; i <= end; i++) {
            if (i == end || target.charAt(i) == '/') {
                if (onlyDots && (dots == 1 || dots == 2) && i > segmentStart) {
                    return false;
                }
                segmentStart = i + 1;
                dots = 0;
                onlyDots = true;
                continue;
            }
            char c = target.charAt(i);
            if (c == '\\') {
                return false;
            }
            if (c == '.') {
                dots++;
            } else if (c == '%' && i + 2 < end) {
                char h = target.charAt(i + 1);
                char l = (char) (target.charAt(i + 2) | 0x20);
                if (h == '2' && l == 'e') {
                    dots++;
                    i += 2;
                } else if ((h == '2' && l == 'f') || (h == '5' && l == 'c')) {
                    return false;
                } else {
                    onlyDots = false;
                }
            } else {
                onlyDots = false;
            }
        }
        return true;
    }
}
