package io.megallm.proxy.bench.chaos;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.TreeMap;

/**
 * The proxy's gauges, read from its {@code /metrics} (loopback is allowed without a token).
 * Kept: every unlabelled sample of a {@code megallm_} gauge family, every sample whose name
 * mentions a permit or waiter (the hardening may add them), and the JVM heap in use when the
 * proxy exports it. One short blocking connection per read, with a time limit.
 */
final class ProxyGauges {

    /** Sum of the heap samples, when the proxy exports JVM memory gauges. */
    static final String HEAP_BYTES = "jvm_heap_used_bytes";

    private ProxyGauges() {
    }

    /** The gauges, or an empty map when /metrics could not be read. */
    static Map<String, Double> read(int port) {
        try {
            return parse(get(port, "/metrics"));
        } catch (IOException | RuntimeException e) {
            return Map.of();
        }
    }

    static Map<String, Double> parse(String text) {
        Map<String, Double> out = new TreeMap<>();
        java.util.Set<String> gauges = new java.util.HashSet<>();
        double heap = 0;
        boolean anyHeap = false;
        for (String line : text.split("\n")) {
            if (line.startsWith("# TYPE ")) {
                String[] f = line.split(" ");
                if (f.length >= 4 && f[3].equals("gauge")) {
                    gauges.add(f[2]);
                }
                continue;
            }
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            int sp = line.lastIndexOf(' ');
            if (sp < 0) {
                continue;
            }
            String key = line.substring(0, sp);
            double v;
            try {
                v = Double.parseDouble(line.substring(sp + 1).trim());
            } catch (NumberFormatException e) {
                continue;
            }
            int brace = key.indexOf('{');
            String name = brace < 0 ? key : key.substring(0, brace);
            String lower = key.toLowerCase();
            if (name.startsWith("jvm_memory") && name.contains("used") && lower.contains("heap")
                    && !lower.contains("nonheap")) {
                heap += v;
                anyHeap = true;
            } else if (lower.contains("permit") || lower.contains("waiter")) {
                out.put(key, v);
            } else if (brace < 0 && name.startsWith("megallm_") && gauges.contains(name)) {
                out.put(name, v);
            }
        }
        if (anyHeap) {
            out.put(HEAP_BYTES, heap);
        }
        return out;
    }

    private static String get(int port, String path) throws IOException {
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress("127.0.0.1", port), 2000);
            s.setSoTimeout(5000);
            OutputStream out = s.getOutputStream();
            out.write(("GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                    .getBytes(StandardCharsets.US_ASCII));
            out.flush();
            InputStream in = s.getInputStream();
            ByteArrayOutputStream b = new ByteArrayOutputStream(16 * 1024);
            byte[] buf = new byte[8192];
            int n;
            while ((n = in.read(buf)) > 0 && b.size() < 4 * 1024 * 1024) {
                b.write(buf, 0, n);
            }
            String all = b.toString(StandardCharsets.UTF_8);
            int body = all.indexOf("\r\n\r\n");
            if (!all.startsWith("HTTP/1.1 200") || body < 0) {
                throw new IOException("/metrics answered " + all.lines().findFirst().orElse("nothing"));
            }
            return all.substring(body + 4);
        }
    }
}
