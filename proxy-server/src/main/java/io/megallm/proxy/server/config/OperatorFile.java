package io.megallm.proxy.server.config;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A text file the operator points the proxy at (the key file, the client file, the key state
 * file), read with the checks that keep a wrong file from costing memory or replacing good
 * settings with junk. Its messages name the file, never its content: these files hold keys.
 */
public final class OperatorFile {

    /** Why a file was not read; the message (a predicate: "is a directory…") is safe to log. */
    public static final class Refused extends IOException {
        public Refused(String message) {
            super(message);
        }
    }

    private OperatorFile() {
    }

    /**
     * The file's bytes, at most {@code maxBytes}. The size the file system reports is not trusted
     * alone: a device or a pipe reports 0 and never ends ({@code /dev/zero}), which would take the
     * heap; such a file is refused before it is opened.
     */
    public static byte[] read(Path path, long maxBytes) throws IOException {
        if (Files.isDirectory(path)) {
            throw new Refused("is a directory, not a file (Docker creates a directory when the mounted"
                    + " file does not exist on the host: create the file there)");
        }
        if (!Files.exists(path)) {
            throw new Refused("does not exist");
        }
        if (!Files.isRegularFile(path)) {
            throw new Refused("is not a regular file (a device or a pipe)");
        }
        if (Files.size(path) > maxBytes) {
            throw new Refused("is larger than " + maxBytes / (1024 * 1024) + " MiB");
        }
        byte[] bytes;
        try (InputStream in = Files.newInputStream(path)) {
            bytes = in.readNBytes((int) Math.min(Integer.MAX_VALUE - 8, maxBytes + 1));
        }
        if (bytes.length > maxBytes) {
            throw new Refused("is larger than " + maxBytes / (1024 * 1024) + " MiB");
        }
        for (byte b : bytes) {
            if (b == 0) {
                throw new Refused("is not text (it holds NUL bytes): is it still encrypted or compressed?");
            }
        }
        return bytes;
    }

    /**
     * A list of secrets (the key file, the client file) as text: {@link #read} and then refused
     * when it is still encrypted though text (armour). Every message starts "the {@code what}
     * {@code path}", and names nothing of the content.
     */
    public static String readList(Path path, long maxBytes, String what) throws IOException {
        byte[] bytes;
        try {
            bytes = read(path, maxBytes);
        } catch (Refused e) {
            throw new Refused("the " + what + " " + path + " " + e.getMessage());
        } catch (AccessDeniedException e) {
            throw new IOException("the " + what + " " + path + " is not readable by the proxy's user (permission"
                    + " denied): check the file's owner and mode");
        } catch (IOException e) {
            throw new IOException("the " + what + " " + path + " could not be read (" + e.getClass().getSimpleName() + ")");
        }
        // Decoded leniently: a comment in another encoding must not cost the whole list; a line
        // with an undecodable byte is non-ASCII and gets skipped on its own. Lines are read lazily,
        // here and by the parsers: a list of a million lines would itself be the memory spike.
        String text = new String(bytes, StandardCharsets.UTF_8);
        String armour = armour(text.lines()::iterator);
        if (armour != null) {
            throw new Refused("the " + what + " " + path + " is " + armour + ": decrypt or decode it first");
        }
        return text;
    }

    /**
     * What an encrypted file looks like when it is text (its lines would pass as keys): PEM or
     * OpenPGP armour, or OpenSSL's base64 output, which begins with "Salted__" encoded. Null if none.
     */
    private static String armour(Iterable<String> lines) {
        for (String line : lines) {
            String l = line.strip();
            if (l.startsWith("-----BEGIN ")) {
                return "armoured (" + (l.contains("PGP") ? "OpenPGP" : "PEM") + ")";
            }
            if (!l.isEmpty() && !l.startsWith("#")) {
                return l.startsWith("U2FsdGVkX1") ? "OpenSSL-encrypted (base64)" : null;
            }
        }
        return null;
    }
}
