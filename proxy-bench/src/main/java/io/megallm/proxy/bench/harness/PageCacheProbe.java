package io.megallm.proxy.bench.harness;

import java.io.FileOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * What a file that grows costs on this machine, per byte written: what every peer's access log
 * pays. On a virtual machine that hands free guest memory back to its host (virtio-balloon free
 * page reporting), each fresh page-cache page faults on the host at its first touch. This
 * project's benchmark VM measured 15 to 30 times the cost of overwriting cached pages, and the
 * price moved from hour to hour. The proxy writes more log bytes per request than Nginx (more
 * fields, and a console copy), so the price moves its rows at 16 and 64 connections. The report
 * gives the price at the start and at the end of the run. Written as the peers' logs are, in
 * 64 KB writes, into a new file that is deleted afterwards.
 */
public final class PageCacheProbe {

    static final int CHUNK = 64 * 1024;

    private PageCacheProbe() {
    }

    /** Nanoseconds per byte to write {@code bytes} into a new file in {@code dir}; NaN when it could not. */
    public static double nanosPerByte(Path dir, long bytes) {
        Path file = dir.resolve("page-cache-probe-" + System.nanoTime() + ".bin");
        byte[] chunk = new byte[CHUNK];
        Arrays.fill(chunk, (byte) 'x');
        try {
            long written = 0;
            long start = System.nanoTime();
            try (FileOutputStream out = new FileOutputStream(file.toFile())) {
                while (written < bytes) {
                    out.write(chunk);
                    written += CHUNK;
                }
            }
            return (double) (System.nanoTime() - start) / written;
        } catch (IOException e) {
            return Double.NaN;
        } finally {
            try {
                Files.deleteIfExists(file);
            } catch (IOException e) {
                // a temp file in the run's work directory, which goes at the end anyway
            }
        }
    }
}
