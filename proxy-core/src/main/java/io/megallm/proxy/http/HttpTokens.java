package io.megallm.proxy.http;

/** The token characters of RFC 9110 §5.6.2, which field names and methods are made of. */
public final class HttpTokens {

    private static final boolean[] TCHAR = new boolean[128];

    static {
        for (char c = '0'; c <= '9'; c++) {
            TCHAR[c] = true;
        }
        for (char c = 'a'; c <= 'z'; c++) {
            TCHAR[c] = true;
            TCHAR[c - 32] = true;
        }
        for (char c : "!#$%&'*+-.^_`|~".toCharArray()) {
            TCHAR[c] = true;
        }
    }

    private HttpTokens() {
    }

    public static boolean isTchar(int b) {
        return b >= 0 && b < 128 && TCHAR[b];
    }
}
