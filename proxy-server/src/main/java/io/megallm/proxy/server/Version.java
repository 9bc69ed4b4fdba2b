package io.megallm.proxy.server;

import java.io.IOException;
import java.io.InputStream;
import java.util.Properties;

/** The project version, written into the jar by the build. */
public final class Version {

    public static final String VALUE = load();

    private Version() {
    }

    private static String load() {
        try (InputStream in = Version.class.getResourceAsStream("/megallm-proxy-version.properties")) {
            if (in == null) {
                return "unknown";
            }
            Properties p = new Properties();
            p.load(in);
            return p.getProperty("version", "unknown");
        } catch (IOException e) {
            return "unknown";
        }
    }
}
