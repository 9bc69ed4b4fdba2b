package io.megallm.proxy.http;

/**
 * What may not reach a log line as it is: text from clients, upstreams, files or Redis (a model
 * name, a key's reason) is written with these characters replaced, so a line stays one line and
 * reads as it is.
 */
public final class LogText {

    private LogText() {
    }

    /**
     * Control characters (C0, DEL, C1: a newline forges a line, 0x9B starts a terminal escape),
     * line separators, and invisible format characters such as the bidi overrides.
     */
    public static boolean invisible(char c) {
        return Character.isISOControl(c) || c == 0x2028 || c == 0x2029 || Character.getType(c) == Character.FORMAT;
    }

    /** At most {@code max} characters of {@code text}, the {@link #invisible} ones as '_'; null stays null. */
    public static String printable(String text, int max) {
        if (text == null) {
            return null;
        }
        int n = Math.min(text.length(), max);
        StringBuilder b = new StringBuilder(n);
        for (int i = 0; i < n; i++) {
            char c = text.charAt(i);
            b.append(invisible(c) ? '_' : c);
        }
        return b.toString();
    }
}
