package io.megallm.proxy.server.egress;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * An outbound proxy for tests, on blocking sockets: HTTP CONNECT or SOCKS5 (RFC 1928, with the
 * user/password method of RFC 1929 when credentials are set). It records every destination it
 * was asked for, as the client named it (a name or an address), then pipes bytes both ways. An
 * HTTP request in absolute form (not CONNECT) is forwarded as an HTTP proxy forwards it: each
 * request on the connection is checked for credentials, recorded in {@link #forwarded} and sent
 * on in origin form without its {@code Proxy-Authorization}.
 */
final class TestProxy implements AutoCloseable {

    enum Kind { HTTP, SOCKS5 }

    private final Kind kind;
    private final String user;
    private final String password;
    private final ServerSocket server;
    final List<String> destinations = new CopyOnWriteArrayList<>();
    final List<String> refusals = new CopyOnWriteArrayList<>();
    /** The request lines of forwarded requests, as they came. */
    final List<String> forwarded = new CopyOnWriteArrayList<>();
    /** The targets of forwarded requests whose origin could not be reached (answered 503, as squid does). */
    final List<String> unreachable = new CopyOnWriteArrayList<>();

    TestProxy(Kind kind, String user, String password) throws IOException {
        this(kind, user, password, InetAddress.getLoopbackAddress());
    }

    /** Listening on {@code address} (an IPv6 loopback, say). */
    TestProxy(Kind kind, String user, String password, InetAddress address) throws IOException {
        this.kind = kind;
        this.user = user;
        this.password = password;
        this.server = new ServerSocket(0, 50, address);
        Thread t = new Thread(this::acceptLoop, "test-proxy-" + kind);
        t.setDaemon(true);
        t.start();
    }

    int port() {
        return server.getLocalPort();
    }

    private void acceptLoop() {
        while (!server.isClosed()) {
            try {
                Socket s = server.accept();
                Thread t = new Thread(() -> serve(s), "test-proxy-conn");
                t.setDaemon(true);
                t.start();
            } catch (IOException e) {
                return;
            }
        }
    }

    private void serve(Socket client) {
        try (client) {
            InputStream in = client.getInputStream();
            OutputStream out = client.getOutputStream();
            if (kind == Kind.HTTP) {
                in = new java.io.BufferedInputStream(in);
                in.mark(8);
                byte[] first = in.readNBytes(8);
                in.reset();
                if (!new String(first, StandardCharsets.US_ASCII).startsWith("CONNECT ")) {
                    forward(in, out);
                    return;
                }
            }
            String[] target = kind == Kind.HTTP ? connect(in, out) : socks(new DataInputStream(in), out);
            if (target == null) {
                return;
            }
            try (Socket upstream = new Socket(target[0], Integer.parseInt(target[1]))) {
                if (kind == Kind.HTTP) {
                    out.write("HTTP/1.1 200 Connection established\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
                } else {
                    out.write(new byte[] {5, 0, 0, 1, 0, 0, 0, 0, 0, 0});
                }
                out.flush();
                Thread back = new Thread(() -> pipe(upstreamIn(upstream), out), "test-proxy-back");
                back.setDaemon(true);
                back.start();
                pipe(in, upstream.getOutputStream());
                back.join(10_000);
            }
        } catch (Exception e) {
            // The client or the upstream went away: the test sees it from its own side.
        }
    }

    private static InputStream upstreamIn(Socket s) {
        try {
            return s.getInputStream();
        } catch (IOException e) {
            return InputStream.nullInputStream();
        }
    }

    private static void pipe(InputStream from, OutputStream to) {
        byte[] buf = new byte[16384];
        try {
            for (int n; (n = from.read(buf)) > 0; ) {
                to.write(buf, 0, n);
                to.flush();
            }
        } catch (IOException e) {
            // One side closed.
        } finally {
            try {
                to.close();
            } catch (IOException ignored) {
                // already closed
            }
        }
    }

    /** One request head up to its blank line, as lines; null at the end of the stream. */
    private static String[] head(InputStream in) throws IOException {
        ByteArrayOutputStream head = new ByteArrayOutputStream();
        while (!head.toString(StandardCharsets.ISO_8859_1).endsWith("\r\n\r\n")) {
            int b = in.read();
            if (b < 0) {
                return null;
            }
            head.write(b);
        }
        return head.toString(StandardCharsets.ISO_8859_1).split("\r\n");
    }

    private boolean authorized(String[] lines) {
        if (user == null) {
            return true;
        }
        String expected = "Basic " + Base64.getEncoder().encodeToString((user + ":" + password)
                .getBytes(StandardCharsets.UTF_8));
        for (String l : lines) {
            if (l.regionMatches(true, 0, "Proxy-Authorization:", 0, 20) && l.substring(20).strip().equals(expected)) {
                return true;
            }
        }
        return false;
    }

    /**
     * Requests in absolute form, one after another on this connection, to the one origin the first
     * names; 407 (with a body, then the connection kept, as squid does) without the credentials.
     */
    private void forward(InputStream in, OutputStream out) throws Exception {
        Socket upstream = null;
        Thread back = null;
        try {
            for (String[] lines; (lines = head(in)) != null; ) {
                String[] requestLine = lines[0].split(" ");
                long length = 0;
                for (String l : lines) {
                    if (l.regionMatches(true, 0, "Content-Length:", 0, 15)) {
                        length = Long.parseLong(l.substring(15).strip());
                    }
                }
                byte[] body = in.readNBytes((int) length);
                if (!authorized(lines)) {
                    refusals.add(requestLine[1]);
                    out.write(("HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"t\"\r\n"
                            + "Content-Length: 13\r\n\r\naccess denied").getBytes(StandardCharsets.US_ASCII));
                    out.flush();
                    continue;
                }
                forwarded.add(lines[0]);
                java.net.URI uri = java.net.URI.create(requestLine[1]);
                if (upstream == null) {
                    try {
                        upstream = new Socket(uri.getHost(), uri.getPort());
                    } catch (IOException e) {
                        // As squid answers when it cannot connect: its own 503, the connection kept.
                        String page = "<html>The requested URL could not be retrieved</html>";
                        out.write(("HTTP/1.1 503 Service Unavailable\r\nX-Squid-Error: ERR_CONNECT_FAIL 111\r\n"
                                + "Content-Type: text/html\r\nContent-Length: " + page.length() + "\r\n\r\n" + page)
                                .getBytes(StandardCharsets.US_ASCII));
                        out.flush();
                        unreachable.add(requestLine[1]);
                        continue;
                    }
                    Socket u = upstream;
                    back = new Thread(() -> pipe(upstreamIn(u), out), "test-proxy-back");
                    back.setDaemon(true);
                    back.start();
                }
                StringBuilder h = new StringBuilder(requestLine[0] + " " + uri.getRawPath()
                        + (uri.getRawQuery() != null ? "?" + uri.getRawQuery() : "") + " " + requestLine[2] + "\r\n");
                for (int i = 1; i < lines.length; i++) {
                    if (!lines[i].regionMatches(true, 0, "Proxy-Authorization:", 0, 20)) {
                        h.append(lines[i]).append("\r\n");
                    }
                }
                OutputStream up = upstream.getOutputStream();
                up.write(h.append("\r\n").toString().getBytes(StandardCharsets.ISO_8859_1));
                up.write(body);
                up.flush();
            }
        } finally {
            if (upstream != null) {
                upstream.shutdownOutput();
                back.join(10_000);
                upstream.close();
            }
        }
    }

    /** HTTP CONNECT: the head up to its blank line; 407 without the right Proxy-Authorization. */
    private String[] connect(InputStream in, OutputStream out) throws IOException {
        String[] lines = head(in);
        if (lines == null) {
            return null;
        }
        String[] requestLine = lines[0].split(" ");
        if (!authorized(lines)) {
            refusals.add(requestLine[1]);
            out.write("HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"
                    .getBytes(StandardCharsets.US_ASCII));
            out.flush();
            return null;
        }
        destinations.add(requestLine[1]);
        int colon = requestLine[1].lastIndexOf(':');
        return new String[] {requestLine[1].substring(0, colon), requestLine[1].substring(colon + 1)};
    }

    private String[] socks(DataInputStream in, OutputStream out) throws IOException {
        if (in.readUnsignedByte() != 5) {
            return null;
        }
        byte[] methods = new byte[in.readUnsignedByte()];
        in.readFully(methods);
        int method = user != null ? 2 : 0;
        out.write(new byte[] {5, (byte) method});
        out.flush();
        if (method == 2) {
            in.readUnsignedByte();
            byte[] u = new byte[in.readUnsignedByte()];
            in.readFully(u);
            byte[] p = new byte[in.readUnsignedByte()];
            in.readFully(p);
            boolean ok = user.equals(new String(u, StandardCharsets.UTF_8)) && password.equals(new String(p, StandardCharsets.UTF_8));
            out.write(new byte[] {1, (byte) (ok ? 0 : 1)});
            out.flush();
            if (!ok) {
                refusals.add("socks auth");
                return null;
            }
        }
        in.readUnsignedByte();
        in.readUnsignedByte();
        in.readUnsignedByte();
        int atyp = in.readUnsignedByte();
        String host;
        if (atyp == 3) {
            byte[] name = new byte[in.readUnsignedByte()];
            in.readFully(name);
            host = new String(name, StandardCharsets.US_ASCII);
        } else {
            byte[] addr = new byte[atyp == 1 ? 4 : 16];
            in.readFully(addr);
            host = InetAddress.getByAddress(addr).getHostAddress();
        }
        int port = in.readUnsignedShort();
        destinations.add((atyp == 3 ? "name " : "address ") + host + ":" + port);
        return new String[] {host, Integer.toString(port)};
    }

    @Override
    public void close() throws IOException {
        server.close();
    }
}
