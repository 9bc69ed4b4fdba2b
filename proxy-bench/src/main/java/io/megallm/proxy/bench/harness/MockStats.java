package io.megallm.proxy.bench.harness;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Reads the mock's counters ({@code GET /mock/stats}, straight to the mock). */
public final class MockStats {

    private static final Pattern FIELD = Pattern.compile("\"(\\w+)\":(-?\\d+)");

    private MockStats() {
    }

    public static Map<String, Long> fetch(int mockPort) {
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress("127.0.0.1", mockPort), 2000);
            s.setSoTimeout(5000);
            s.getOutputStream().write(Requests.get(mockPort, "/mock/stats").getBytes(StandardCharsets.US_ASCII));
            s.getOutputStream().flush();
            InputStream in = s.getInputStream();
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] buf = new byte[4096];
            int n;
            while ((n = in.read(buf)) > 0 && out.size() < 64 * 1024) {
                out.write(buf, 0, n);
            }
            Map<String, Long> m = new HashMap<>();
            Matcher matcher = FIELD.matcher(out.toString(StandardCharsets.US_ASCII));
            while (matcher.find()) {
                m.put(matcher.group(1), Long.parseLong(matcher.group(2)));
            }
            return m;
        } catch (IOException e) {
            return Map.of();
        }
    }

    public static long get(int mockPort, String field) {
        return fetch(mockPort).getOrDefault(field, -1L);
    }
}
