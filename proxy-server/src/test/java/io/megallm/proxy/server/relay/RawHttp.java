package io.megallm.proxy.server.relay;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;

/** Raw bytes over a socket, for what an HTTP client library would not let a test send or see. */
final class RawHttp {

    private RawHttp() {
    }

    static Socket connect(int port) throws IOException {
        Socket s = new Socket();
        s.connect(new InetSocketAddress("127.0.0.1", port), 5000);
        s.setSoTimeout(30_000);
        return s;
    }

    /** Sends {@code request} and reads until the server closes or one response is complete. */
    static String exchange(int port, String request) throws IOException {
        try (Socket s = connect(port)) {
            s.getOutputStream().write(request.getBytes(StandardCharsets.ISO_8859_1));
            s.getOutputStream().flush();
            return readResponse(s.getInputStream());
        }
    }

    /** One response: head, then a body framed by Content-Length or chunked, or until EOF. */
    static String readResponse(InputStream in) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        String head = readHead(in, out);
        String lower = head.toLowerCase();
        int cl = lower.indexOf("\r\ncontent-length:");
        if (cl >= 0) {
            int end = lower.indexOf("\r\n", cl + 2);
            int n = Integer.parseInt(head.substring(cl + 17, end).trim());
            out.write(in.readNBytes(n));
        } else if (lower.contains("transfer-encoding: chunked")) {
            readChunks(in, out);
        } else {
            out.write(in.readAllBytes());
        }
        return out.toString(StandardCharsets.ISO_8859_1);
    }

    static String readHead(InputStream in, ByteArrayOutputStream out) throws IOException {
        int matched = 0;
        int b;
        while (matched < 4 && (b = in.read()) >= 0) {
            out.write(b);
            matched = (b == '\r' || b == '\n') && (matched % 2 == 0) == (b == '\r') ? matched + 1 : (b == '\r' ? 1 : 0);
        }
        return out.toString(StandardCharsets.ISO_8859_1);
    }

    /** Reads chunked framing to the terminating chunk; throws EOF if the stream ends before it. */
    static void readChunks(InputStream in, ByteArrayOutputStream out) throws IOException {
        for (;;) {
            String sizeLine = readLine(in);
            out.write((sizeLine + "\r\n").getBytes(StandardCharsets.ISO_8859_1));
            int size = Integer.parseInt(sizeLine.trim().split(";")[0], 16);
            if (size == 0) {
                out.write(readLine(in).getBytes(StandardCharsets.ISO_8859_1));
                out.write("\r\n".getBytes(StandardCharsets.ISO_8859_1));
                return;
            }
            byte[] data = in.readNBytes(size + 2);
            if (data.length < size + 2) {
                throw new java.io.EOFException("stream ended inside a chunk");
            }
            out.write(data);
        }
    }

    static String readLine(InputStream in) throws IOException {
        StringBuilder b = new StringBuilder();
        int c;
        while ((c = in.read()) >= 0) {
            if (c == '\n') {
                int n = b.length();
                if (n > 0 && b.charAt(n - 1) == '\r') {
                    b.setLength(n - 1);
                }
                return b.toString();
            }
            b.append((char) c);
        }
        throw new java.io.EOFException("stream ended before the end of a line");
    }
}
