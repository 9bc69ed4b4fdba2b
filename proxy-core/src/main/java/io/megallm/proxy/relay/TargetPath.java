package io.megallm.proxy.relay;

/**
 * Decides whether a client's request target may go upstream under the base path (contract §6).
 * The upstream decodes and normalises what it receives, so {@code /v1/../x} or
 * {@code /v1/%2e%2e/x} would reach paths outside the base path while carrying a pool key; an
 * encoded slash ({@code %2F}) can do the same behind a normalising front. Backslashes (raw or
 * {@code %5C}) are refused too: some servers read them as slashes. A segment is judged by its
 * part before a {@code ;}: Java servlet containers strip such path parameters before they
 * resolve dot-segments, so {@code /v1/..;/x} is {@code /x} there. The query string is not a
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
        boolean params = false;
        for (int i = 0; i <= end; i++) {
            if (i == end || target.charAt(i) == '/') {
                if (onlyDots && (dots == 1 || dots == 2) && i > segmentStart) {
                    return false;
                }
                segmentStart = i + 1;
                dots = 0;
                onlyDots = true;
                params = false;
                continue;
            }
            char c = target.charAt(i);
            if (c == '\\') {
                return false;
            }
            if (c == ';') {
                params = true;
            } else if (params) {
                // A parameter's bytes do not make its segment a dot-segment or not; slashes and
                // backslashes in them are still seen, above and below.
                if (c == '%' && i + 2 < end && isSlashEscape(target.charAt(i + 1), target.charAt(i + 2))) {
                    return false;
                }
            } else if (c == '.') {
                dots++;
            } else if (c == '%' && i + 2 < end) {
                char h = target.charAt(i + 1);
                char l = (char) (target.charAt(i + 2) | 0x20);
                if (h == '2' && l == 'e') {
                    dots++;
                    i += 2;
                } else if (isSlashEscape(h, target.charAt(i + 2))) {
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

    /** {@code %2F} or {@code %5C}, either case: an encoded slash or backslash. */
    private static boolean isSlashEscape(char high, char low) {
        char l = (char) (low | 0x20);
        return (high == '2' && l == 'f') || (high == '5' && l == 'c');
    }
}
