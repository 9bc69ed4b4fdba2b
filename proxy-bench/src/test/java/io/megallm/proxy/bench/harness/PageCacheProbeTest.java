package io.megallm.proxy.bench.harness;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class PageCacheProbeTest {

    @Test
    void measuresAWriteOfANewFileAndLeavesNothingBehind(@TempDir Path dir) throws Exception {
        double ns = PageCacheProbe.nanosPerByte(dir, 1024 * 1024);
        assertTrue(ns > 0 && Double.isFinite(ns), "ns a byte: " + ns);
        try (var files = Files.list(dir)) {
            assertEquals(0, files.count(), "the probe's file is deleted");
        }
    }

    @Test
    void aDirectoryItCannotWriteIsNaNNotAnError(@TempDir Path dir) {
        assertTrue(Double.isNaN(PageCacheProbe.nanosPerByte(dir.resolve("missing"), 1024 * 1024)));
    }
}
