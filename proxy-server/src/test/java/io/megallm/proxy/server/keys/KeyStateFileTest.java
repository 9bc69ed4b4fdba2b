package io.megallm.proxy.server.keys;

import io.megallm.proxy.key.ApiKey;
import io.megallm.proxy.key.KeyClock;
import io.megallm.proxy.key.KeyPolicy;
import io.megallm.proxy.key.KeyPool;
import io.megallm.proxy.key.KeyState;
import io.megallm.proxy.key.SavedKeyState;
import io.megallm.proxy.server.testing.LogCapture;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Contract §7, key state survives a restart: the file side (atomic, SHA-256 only, unwritable = warning). */
class KeyStateFileTest {

    private static final String A = "sk-mega-statefile-aaaaaaaaaaaa0001";
    private static final String B = "sk-mega-statefile-bbbbbbbbbbbb0002";

    @TempDir
    Path dir;

    private final AtomicLong nanos = new AtomicLong(10_000_000_000L);
    private final AtomicLong wall = new AtomicLong(1_800_000_000_000L);

    private KeyPool pool() {
        KeyPool p = new KeyPool(KeyClock.of(nanos::get, wall::get), new KeyPolicy(60, 300, 600));
        p.reload(List.of(A, B));
        return p;
    }

    @Test
    void statesGoToTheFileNamedBySha256AndComeBackInANewProcess() throws Exception {
        Path path = dir.resolve("data/key-state.json");
        KeyPool pool = pool();
        ApiKey a = pool.keys().get(0);
        pool.markFailed(a, 401);
        try (KeyStateFile file = new KeyStateFile(path)) {
            assertTrue(file.writable());
            file.changed(pool);
        } // close() writes what is pending

        String text = Files.readString(path, StandardCharsets.UTF_8);
        assertFalse(text.contains(A) || text.contains(B), "no key in the file: " + text);
        assertFalse(text.contains("statefile"), "not even a part of one: " + text);
        assertTrue(text.contains(a.id()), text);
        assertTrue(text.contains("\"state\":\"failed\""), text);
        try (var files = Files.list(path.getParent())) {
            assertEquals(List.of(path), files.toList(), "no temp file left behind");
        }

        nanos.set(5L);
        wall.addAndGet(100_000);
        KeyPool next = pool();
        try (KeyStateFile file = new KeyStateFile(path)) {
            List<SavedKeyState> saved = file.load();
            assertEquals(2, saved.size());
            assertEquals(1, next.restore(saved));
        }
        ApiKey a2 = next.keys().get(0);
        assertEquals(KeyState.Kind.FAILED, a2.state().kind());
        assertEquals("upstream 401", a2.state().reason());
        assertEquals(200, next.recheckInSeconds(a2), "300 s minus the 100 s the proxy was down");
    }

    @Test
    void burstsOfChangesCoalesceIntoFewWrites() throws Exception {
        Path path = dir.resolve("state.json");
        KeyPool pool = pool();
        try (KeyStateFile file = new KeyStateFile(path)) {
            for (int i = 0; i < 1000; i++) {
                pool.coolDown(pool.keys().get(1), 429, i);
                file.changed(pool);
            }
        }
        List<SavedKeyState> saved = KeyStateFile.parse(Files.readAllBytes(path));
        assertEquals(KeyState.Kind.COOLING_DOWN, saved.get(1).kind());
        assertEquals(wall.get() + 999_000, saved.get(1).untilEpochMillis(), "the last change is what is written");
    }

    @Test
    void anUnwritableLocationIsOneWarningAndNoPersistence() throws Exception {
        Path blocker = dir.resolve("not-a-dir");
        Files.writeString(blocker, "x");
        Path path = blocker.resolve("key-state.json");
        int mark = LogCapture.size();
        try (KeyStateFile file = new KeyStateFile(path)) {
            assertFalse(file.writable());
            KeyPool pool = pool();
            pool.markFailed(pool.keys().get(0), 401);
            file.changed(pool);
            file.changed(pool);
            assertEquals(List.of(), file.load());
        }
        List<String> warnings = LogCapture.since(mark).stream().filter(l -> l.contains("KEY_STATE_FILE")).toList();
        assertEquals(1, warnings.size(), warnings.toString());
        assertTrue(warnings.get(0).startsWith("WARN"), warnings.get(0));
        assertFalse(Files.exists(path));
    }

    @Test
    void aWriteThatFailsIsTriedAgainUntilTheLocationTakesIt() throws Exception {
        Path folder = dir.resolve("state");
        Path path = folder.resolve("key-state.json");
        KeyPool pool = pool();
        int mark = LogCapture.size();
        try (KeyStateFile file = new KeyStateFile(path, 20)) {
            file.changed(pool);
            awaitFile(path, "\"state\":\"available\"");
            // The folder goes away and a file takes its place, as a full or unmounted disk would fail.
            Files.delete(path);
            Files.delete(folder);
            Files.writeString(folder, "in the way");
            pool.markFailed(pool.keys().get(0), 401);
            file.changed(pool);
            for (int i = 0; i < 1000 && file.writable(); i++) {
                Thread.sleep(5);
            }
            assertFalse(file.writable(), "the failed write is seen");
            Files.delete(folder);
            Files.createDirectories(folder);
            awaitFile(path, "\"state\":\"failed\"");
            assertTrue(file.writable());
        }
        List<String> lines = LogCapture.since(mark).stream().filter(l -> l.contains("KEY_STATE_FILE")).toList();
        assertEquals(2, lines.size(), "one warning for the failing stretch, one line when it ends: " + lines);
        assertTrue(lines.get(0).startsWith("WARN") && lines.get(0).contains("could not be written"), lines.get(0));
        assertTrue(lines.get(1).contains("is written again"), lines.get(1));
    }

    /**
     * A file mounted on its own ({@code docker run -v ./key-state.json:/app/data/key-state.json})
     * cannot be replaced by a rename: the kernel answers EBUSY, and every write failed for ever
     * with "could not be written (FileSystemException)". It is written in place instead, with one
     * warning that says why and what to mount. Needs root and {@code mount} (skipped elsewhere).
     */
    @Test
    void aFileMountedOnItsOwnIsWrittenInPlace() throws Exception {
        Path folder = Files.createDirectories(dir.resolve("data"));
        Path path = folder.resolve("key-state.json");
        Path source = dir.resolve("host-key-state.json");
        Files.writeString(path, "");
        Files.writeString(source, "");
        Assumptions.assumeTrue(run("mount", "--bind", source.toString(), path.toString()) == 0,
                "bind mounts need root and mount(8)");
        int mark = LogCapture.size();
        try {
            KeyPool pool = pool();
            pool.markFailed(pool.keys().get(0), 401);
            try (KeyStateFile file = new KeyStateFile(path)) {
                file.changed(pool);
            }
            String text = Files.readString(source, StandardCharsets.UTF_8);
            assertTrue(text.contains("\"state\":\"failed\""), "the host's file holds the states: " + text);
            try (KeyStateFile file = new KeyStateFile(path)) {
                assertEquals(2, file.load().size());
            }
            try (var files = Files.list(folder)) {
                assertEquals(List.of(path), files.toList(), "no temp file left behind");
            }
        } finally {
            run("umount", path.toString());
        }
        List<String> lines = LogCapture.since(mark).stream().filter(l -> l.contains("KEY_STATE_FILE")).toList();
        assertEquals(1, lines.size(), lines.toString());
        assertTrue(lines.get(0).startsWith("WARN") && lines.get(0).contains("in place")
                && lines.get(0).contains("mount its folder"), lines.get(0));
    }

    private static int run(String... command) throws Exception {
        try {
            Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
            p.getInputStream().readAllBytes();
            return p.waitFor();
        } catch (java.io.IOException e) {
            return -1;
        }
    }

    /** Polls for {@code path} to hold {@code text}: the writes are on the file's own thread. */
    private static void awaitFile(Path path, String text) throws Exception {
        for (int i = 0; i < 2000; i++) {
            if (Files.isRegularFile(path) && Files.readString(path).contains(text)) {
                return;
            }
            Thread.sleep(5);
        }
        throw new AssertionError(path + " never held " + text);
    }

    /** A state keeps the time it was first written through later writes and a restart (contract §14: the newer wins). */
    @Test
    void aStateKeepsTheTimeItWasRecorded() throws Exception {
        Path path = dir.resolve("state.json");
        KeyPool pool = pool();
        ApiKey a = pool.keys().get(0);
        ApiKey b = pool.keys().get(1);
        pool.markFailed(a, 401);
        long failedAt = wall.get();
        try (KeyStateFile file = new KeyStateFile(path)) {
            file.changed(pool);
        }
        wall.addAndGet(60_000);
        nanos.addAndGet(60_000_000_000L);
        pool.markFailed(b, 402);
        try (KeyStateFile file = new KeyStateFile(path)) {
            file.load();
            file.changed(pool);
        }
        try (KeyStateFile file = new KeyStateFile(path)) {
            file.load();
            assertEquals(failedAt, file.recordedAt(a.id()), "unchanged since its first write");
            assertEquals(failedAt + 60_000, file.recordedAt(b.id()));
            assertEquals(0, file.recordedAt("0".repeat(64)));
        }
    }

    @Test
    void aDamagedFileIsAWarningAndEveryKeyStartsAvailable() throws Exception {
        Path path = dir.resolve("state.json");
        Files.writeString(path, "{\"keys\":[{\"sha256\":");
        try (KeyStateFile file = new KeyStateFile(path)) {
            assertEquals(List.of(), file.load());
        }
    }

    @Test
    void anEmptyFileIsAStateFileWithNoStatesYetAndNoWarning() throws Exception {
        // What an operator makes with touch before mounting it, or a crash leaves before the first write lands.
        Path path = dir.resolve("state.json");
        Files.writeString(path, "\n");
        int mark = LogCapture.size();
        KeyPool pool = pool();
        pool.markFailed(pool.keys().get(0), 401);
        try (KeyStateFile file = new KeyStateFile(path)) {
            assertEquals(List.of(), file.load());
            assertTrue(file.writable());
            file.changed(pool);
        }
        List<String> lines = LogCapture.since(mark).stream().filter(l -> l.contains("KEY_STATE_FILE")).toList();
        assertEquals(List.of(), lines, "nothing is wrong with the file");
        assertTrue(Files.readString(path).contains("\"state\":\"failed\""), "written over: it was ours");
    }

    @Test
    void keysNoLongerInTheKeyFileAreIgnored() throws Exception {
        KeyPool pool = pool();
        pool.markFailed(pool.keys().get(0), 401);
        List<SavedKeyState> saved = KeyStateFile.parse(KeyStateFile.render(pool.savedStates()).getBytes(StandardCharsets.UTF_8));
        KeyPool other = new KeyPool(KeyClock.of(nanos::get, wall::get), KeyPolicy.DEFAULTS);
        other.reload(List.of(B, "sk-mega-statefile-cccccccccccc0003"));
        assertEquals(0, other.restore(saved));
        other.keys().forEach(k -> assertEquals(KeyState.Kind.AVAILABLE, k.state().kind()));
    }
}
