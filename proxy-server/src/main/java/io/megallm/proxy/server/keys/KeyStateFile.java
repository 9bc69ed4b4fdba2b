package io.megallm.proxy.server.keys;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import io.megallm.proxy.http.JsonText;
import io.megallm.proxy.key.KeyPool;
import io.megallm.proxy.key.KeyState;
import io.megallm.proxy.key.KeyStateStore;
import io.megallm.proxy.key.SavedKeyState;
import io.megallm.proxy.server.config.OperatorFile;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * {@code KEY_STATE_FILE} (contract §7): key states written on change, atomically (a temp file in
 * the same folder, then a rename, so a crash leaves the old file or the new one, never half of
 * one), at most {@value #MIN_INTERVAL_MILLIS} ms apart so that a 429 storm costs a few writes, and
 * on a thread of its own: an event loop only flips a flag. Keys are named by SHA-256 only. A file
 * mounted on its own cannot be renamed over, and is written in place (one warning).
 * A location that cannot be written (at start, or later: a full disk) is one warning, and the
 * pending states are tried again every {@value #RETRY_MILLIS} ms while there are any: a disk that
 * has room again, or a folder that was mounted late, gets the current states without a restart.
 *
 * <p>Each state carries when it was recorded ({@code at_epoch_ms}: the first write that held it),
 * so that an instance started again on an old file can tell that a state other instances shared
 * later (an operator's reset, in Redis) is newer than its own (contract §14).
 */
public final class KeyStateFile implements KeyStateStore, AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(KeyStateFile.class);
    private static final JsonFactory JSON = new JsonFactory();
    static final long MIN_INTERVAL_MILLIS = 250;

    static final long RETRY_MILLIS = 10_000;

    private final Path path;
    private final long retryMillis;
    private final ScheduledThreadPoolExecutor writer;
    private final AtomicBoolean pending = new AtomicBoolean();
    /** The last write (or the probe at start) failed: the next is a retry, and its failure is no news. */
    private volatile boolean failing;
    /**
     * The file in KEY_STATE_FILE's place holds something else (the setting names the key file or
     * another of the operator's files): it is never written over, the states are not kept.
     */
    private volatile boolean foreign;
    private volatile KeyPool dirty;
    /** The file cannot be replaced by a rename but can be written: it is, in place (see write). */
    private boolean inPlace;
    private volatile long lastWriteNanos = System.nanoTime() - TimeUnit.MILLISECONDS.toNanos(MIN_INTERVAL_MILLIS);
    /** Each key's state as last loaded or written, and since when; under this object's lock. */
    private Map<String, Stamped> recorded = new HashMap<>();

    /** A state and the epoch ms it was first written (or, read from a file that has no time, the file's). */
    record Stamped(SavedKeyState state, long atEpochMillis) {
    }

    public KeyStateFile(Path path) {
        this(path, RETRY_MILLIS);
    }

    KeyStateFile(Path path, long retryMillis) {
        this.path = path;
        this.retryMillis = retryMillis;
        this.writer = new ScheduledThreadPoolExecutor(1, r -> {
            Thread t = new Thread(r, "megallm-key-state");
            t.setDaemon(true);
            return t;
        });
        // A retry due in seconds must not hold up shutdown; close() writes what is pending itself.
        writer.setExecuteExistingDelayedTasksAfterShutdownPolicy(false);
        this.failing = !probe();
    }

    public Path path() {
        return path;
    }

    /** False while the location cannot be written (the last try failed). */
    public boolean writable() {
        return !failing && !foreign;
    }

    /** Creates the folder and tries a temp file in it, so that the warning comes at start, not at the first failure. */
    private boolean probe() {
        try {
            Path dir = path.toAbsolutePath().getParent();
            Files.createDirectories(dir);
            if (Files.isDirectory(path)) {
                throw new IOException("a directory is in the file's place");
            }
            Path probe = Files.createTempFile(dir, ".key-state", ".probe");
            Files.delete(probe);
            if (Files.exists(path) && !Files.isWritable(path)) {
                throw new IOException("the file is read-only");
            }
            return true;
        } catch (IOException | SecurityException | UnsupportedOperationException e) {
            log.warn("KEY_STATE_FILE {} is not writable ({}): key states will not survive a restart until it is"
                    + " (tried again every {} s while states change)", path,
                    e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage(), retryMillis / 1000);
            return false;
        }
    }

    @Override
    public synchronized List<SavedKeyState> load() {
        if (!Files.isRegularFile(path)) {
            return List.of();
        }
        try {
            // A state line is ~150 bytes; 64 MiB holds the states of far more keys than a key file may list.
            byte[] bytes = OperatorFile.read(path, 64L * 1024 * 1024);
            int first = firstVisible(bytes);
            if (first < 0) {
                // Made with touch for a mount, or left by a crash before the first write: no states yet.
                return List.of();
            }
            if (first != '{') {
                // Writing states over it would replace the operator's file (the key file itself, when
                // the setting was copied from KEYS_FILE: its keys lost, and the JSON lines reloaded as keys).
                foreign = true;
                log.warn("KEY_STATE_FILE {} is not a key state file (no JSON object in it): it is left as it is,"
                        + " and key states will not survive a restart; point KEY_STATE_FILE at a file of its own", path);
                return List.of();
            }
            // A file written before states carried their time: none of them is newer than the file.
            List<Stamped> stamped = parseStamped(bytes, Files.getLastModifiedTime(path).toMillis());
            List<SavedKeyState> out = new ArrayList<>(stamped.size());
            Map<String, Stamped> byId = new HashMap<>();
            for (Stamped s : stamped) {
                out.add(s.state());
                byId.put(s.state().id(), s);
            }
            recorded = byId;
            return out;
        } catch (OperatorFile.Refused e) {
            log.warn("KEY_STATE_FILE {} {}: starting with every key available", path, e.getMessage());
            return List.of();
        } catch (IOException | RuntimeException e) {
            log.warn("KEY_STATE_FILE {} could not be read ({}): starting with every key available", path,
                    e.getClass().getSimpleName());
            return List.of();
        }
    }

    /**
     * When the state of the key with this SHA-256 was recorded (epoch ms), as loaded or last
     * written; 0 when this file holds none.
     */
    public synchronized long recordedAt(String id) {
        Stamped s = recorded.get(id);
        return s == null ? 0 : s.atEpochMillis();
    }

    /**
     * The first byte that is not JSON white space, -1 for none. Every state file this class wrote
     * (a torn one too) starts with the '{' of a JSON object.
     */
    private static int firstVisible(byte[] bytes) {
        for (byte b : bytes) {
            if (b != ' ' && b != '\t' && b != '\r' && b != '\n') {
                return b;
            }
        }
        return -1;
    }

    @Override
    public void changed(KeyPool pool) {
        if (foreign) {
            return;
        }
        dirty = pool;
        if (pending.compareAndSet(false, true)) {
            schedule(failing ? retryMillis : MIN_INTERVAL_MILLIS);
        }
    }

    /** The next write, {@code interval} after the last one began. */
    private void schedule(long interval) {
        long wait = interval - TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - lastWriteNanos);
        try {
            writer.schedule(this::writeNow, Math.max(0L, wait), TimeUnit.MILLISECONDS);
        } catch (RejectedExecutionException e) {
            // Shut down: close() writes what is pending.
        }
    }

    /** Writes what is pending and stops the writer thread; called at shutdown. */
    @Override
    public void close() {
        writer.shutdown();
        try {
            writer.awaitTermination(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (pending.get()) {
            writeNow();
        }
    }

    private synchronized void writeNow() {
        // Cleared before the snapshot: a change during the write schedules the next one.
        pending.set(false);
        KeyPool pool = dirty;
        if (pool == null || foreign) {
            return;
        }
        lastWriteNanos = System.nanoTime();
        try {
            write(stamp(pool.savedStates(), pool.lifecycle().clock().epochMillis()));
            if (failing) {
                failing = false;
                log.info("KEY_STATE_FILE {} is written again", path);
            }
        } catch (IOException | RuntimeException e) {
            if (!failing) {
                failing = true;
                log.warn("KEY_STATE_FILE {} could not be written ({}): key states will not survive a restart until it"
                        + " can be (tried again every {} s)", path, e.getClass().getSimpleName(), retryMillis / 1000);
            }
            if (pending.compareAndSet(false, true)) {
                schedule(retryMillis);
            }
        }
    }

    /** Each state with its time: kept from the last write while the state is the same, else now. */
    private List<Stamped> stamp(List<SavedKeyState> states, long now) {
        List<Stamped> out = new ArrayList<>(states.size());
        Map<String, Stamped> byId = new HashMap<>();
        for (SavedKeyState s : states) {
            Stamped before = recorded.get(s.id());
            Stamped st = new Stamped(s, before != null && same(before.state(), s) ? before.atEpochMillis() : now);
            out.add(st);
            byId.put(s.id(), st);
        }
        recorded = byId;
        return out;
    }

    /** Deadlines are recomputed from the monotonic clock at every write: within a second is the same. */
    private static boolean same(SavedKeyState a, SavedKeyState b) {
        return a.kind() == b.kind() && Objects.equals(a.reason(), b.reason()) && a.strikes() == b.strikes()
                && a.recheckSeconds() == b.recheckSeconds()
                && Math.abs(a.untilEpochMillis() - b.untilEpochMillis()) < 1000;
    }

    void write(List<Stamped> states) throws IOException {
        byte[] text = renderStamped(states).getBytes(StandardCharsets.UTF_8);
        if (inPlace) {
            writeInPlace(text);
            return;
        }
        Path dir = path.toAbsolutePath().getParent();
        Path temp = Files.createTempFile(dir, ".key-state", ".tmp");
        try {
            // On disk before the rename: after a power loss a renamed file whose data never reached
            // the disk comes back empty (ext4 without auto_da_alloc, XFS), and every state is lost.
            try (FileChannel out = FileChannel.open(temp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
                writeAll(out, text);
                out.force(true);
            }
            try {
                Files.move(temp, path, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(temp, path, StandardCopyOption.REPLACE_EXISTING);
            }
        } catch (FileSystemException e) {
            // A file mounted on its own (a single-file Docker bind mount) refuses to be replaced
            // (EBUSY) while it can be written: in place then, with the crash risk said once.
            if (e.getClass() != FileSystemException.class || !Files.isRegularFile(path) || !Files.isWritable(path)) {
                throw e;
            }
            writeInPlace(text);
            inPlace = true;
            log.warn("KEY_STATE_FILE {} cannot be replaced by a rename ({}): it is written in place from now on, and a"
                    + " crash during a write can leave it damaged (every key then starts available); to keep writes"
                    + " atomic, mount its folder rather than the file", path, e.getReason());
        } finally {
            Files.deleteIfExists(temp);
        }
    }

    private void writeInPlace(byte[] text) throws IOException {
        try (FileChannel out = FileChannel.open(path, StandardOpenOption.WRITE)) {
            // Over the old bytes, then cut: never an empty file between two writes.
            writeAll(out, text);
            out.truncate(text.length);
            out.force(true);
        }
    }

    private static void writeAll(FileChannel out, byte[] text) throws IOException {
        ByteBuffer bytes = ByteBuffer.wrap(text);
        while (bytes.hasRemaining()) {
            out.write(bytes);
        }
    }

    /** The file's text for states of no known time ({@code at_epoch_ms} 0), as tests write them. */
    static String render(List<SavedKeyState> states) {
        return renderStamped(states.stream().map(s -> new Stamped(s, 0)).toList());
    }

    static String renderStamped(List<Stamped> stamped) {
        StringBuilder b = new StringBuilder("{\"version\":1,\"keys\":[");
        boolean first = true;
        for (Stamped st : stamped) {
            SavedKeyState s = st.state();
            if (!first) {
                b.append(',');
            }
            first = false;
            b.append("\n{\"sha256\":\"").append(s.id()).append('"')
                    .append(",\"state\":\"").append(s.kind().name().toLowerCase(Locale.ROOT)).append('"')
                    .append(",\"reason\":").append(s.reason() == null ? "null" : JsonText.quote(s.reason()))
                    .append(",\"until_epoch_ms\":").append(s.untilEpochMillis())
                    .append(",\"consecutive_429\":").append(s.strikes())
                    .append(",\"recheck_s\":").append(s.recheckSeconds())
                    .append(",\"at_epoch_ms\":").append(st.atEpochMillis())
                    .append('}');
        }
        return b.append("\n]}\n").toString();
    }

    static List<SavedKeyState> parse(byte[] bytes) throws IOException {
        return parseStamped(bytes, 0).stream().map(Stamped::state).toList();
    }

    /** {@code fileMillis}: the time of an entry that has none (a file from before states had one). */
    static List<Stamped> parseStamped(byte[] bytes, long fileMillis) throws IOException {
        List<Stamped> out = new ArrayList<>();
        try (JsonParser p = JSON.createParser(bytes)) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                throw new IOException("not an object");
            }
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String field = p.currentName();
                JsonToken t = p.nextToken();
                if ("keys".equals(field) && t == JsonToken.START_ARRAY) {
                    while (p.nextToken() == JsonToken.START_OBJECT) {
                        Stamped s = entry(p, fileMillis);
                        if (s != null) {
                            out.add(s);
                        }
                    }
                } else {
                    p.skipChildren();
                }
            }
        }
        return out;
    }

    private static Stamped entry(JsonParser p, long fileMillis) throws IOException {
        String id = null;
        KeyState.Kind kind = null;
        String reason = null;
        long until = 0;
        int strikes = 0;
        long recheck = 0;
        long at = -1;
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String field = p.currentName();
            JsonToken t = p.nextToken();
            switch (field) {
                case "sha256" -> id = t == JsonToken.VALUE_STRING ? p.getText() : null;
                case "state" -> kind = t == JsonToken.VALUE_STRING ? kindOf(p.getText()) : null;
                case "reason" -> reason = t == JsonToken.VALUE_STRING ? p.getText() : null;
                case "until_epoch_ms" -> until = t == JsonToken.VALUE_NUMBER_INT ? p.getLongValue() : 0;
                case "consecutive_429" -> strikes = t == JsonToken.VALUE_NUMBER_INT ? p.getIntValue() : 0;
                case "recheck_s" -> recheck = t == JsonToken.VALUE_NUMBER_INT ? p.getLongValue() : 0;
                case "at_epoch_ms" -> at = t == JsonToken.VALUE_NUMBER_INT ? p.getLongValue() : -1;
                default -> p.skipChildren();
            }
        }
        if (id == null || kind == null) {
            return null;
        }
        return new Stamped(new SavedKeyState(id, kind, reason, until, Math.max(0, strikes), Math.max(0L, recheck)),
                at < 0 ? fileMillis : at);
    }

    private static KeyState.Kind kindOf(String name) {
        for (KeyState.Kind k : KeyState.Kind.values()) {
            if (k.name().equalsIgnoreCase(name)) {
                return k;
            }
        }
        return null;
    }
}
