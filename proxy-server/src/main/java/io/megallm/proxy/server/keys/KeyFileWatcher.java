package io.megallm.proxy.server.keys;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.Objects;
import java.util.function.BooleanSupplier;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * Reloads the key file when it changes. It polls the file's attributes (through symlinks) twice
 * a second instead of using inotify, because inotify misses what operators actually do: a
 * Docker bind mount of a single file, a Kubernetes ConfigMap whose {@code ..data} symlink is
 * swapped, an editor's rename over the old file. A change is applied once two polls agree, so a
 * file caught half-written is not loaded. Losing (or regaining) read permission counts as a change.
 */
public final class KeyFileWatcher implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(KeyFileWatcher.class);
    private static final long POLL_MILLIS = 500;

    private final Path path;
    private final BooleanSupplier reload;
    private final ScheduledExecutorService timer;
    private final Object reloadsLock = new Object();
    private Snapshot applied;
    private Snapshot pending;
    private int reloads;
    private int changes;

    public KeyFileWatcher(KeyFile keyFile) {
        this(keyFile.path(), () -> keyFile.reloadChanged().problem() == null, "megallm-keys-watch");
    }

    /**
     * Watches any file the same way (the client file of PROXY_API_KEYS=@path too); {@code reload}
     * says whether the new content was taken.
     */
    public KeyFileWatcher(Path path, BooleanSupplier reload, String threadName) {
        this.path = path;
        this.reload = reload;
        this.applied = Snapshot.of(path);
        this.timer = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, threadName);
            t.setDaemon(true);
            return t;
        });
    }

    public KeyFileWatcher start() {
        timer.scheduleWithFixedDelay(this::poll, POLL_MILLIS, POLL_MILLIS, TimeUnit.MILLISECONDS);
        return this;
    }

    private void poll() {
        try {
            Snapshot now = Snapshot.of(path);
            if (now.equals(applied)) {
                pending = null;
                return;
            }
            if (!now.equals(pending)) {
                pending = now;
                return;
            }
            applied = now;
            pending = null;
            boolean taken = reload.getAsBoolean();
            synchronized (reloadsLock) {
                changes++;
                if (taken) {
                    reloads++;
                }
                reloadsLock.notifyAll();
            }
        } catch (RuntimeException | Error e) {
            // Anything thrown out of a periodic task cancels it without a word: the watcher would
            // stop (the audit saw it after an OutOfMemoryError) and later edits would be ignored.
            log.error("watching {} failed: {}", path, e.toString());
        }
    }

    /** Waits until at least {@code count} reloads happened since start; true if they did in time. */
    public boolean awaitReloads(int count, long timeout, TimeUnit unit) throws InterruptedException {
        return await(count, true, timeout, unit);
    }

    /** Waits until the watcher has acted on {@code count} changes, reloaded or refused. */
    public boolean awaitChanges(int count, long timeout, TimeUnit unit) throws InterruptedException {
        return await(count, false, timeout, unit);
    }

    private boolean await(int count, boolean reloadsOnly, long timeout, TimeUnit unit) throws InterruptedException {
        long deadline = System.nanoTime() + unit.toNanos(timeout);
        synchronized (reloadsLock) {
            while ((reloadsOnly ? reloads : changes) < count) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    return false;
                }
                TimeUnit.NANOSECONDS.timedWait(reloadsLock, left);
            }
            return true;
        }
    }

    @Override
    public void close() {
        timer.shutdownNow();
    }

    /**
     * What the poll compares: the attributes of the file the path resolves to now, and whether this
     * process may read it. A {@code chmod} changes neither the time, the size nor the inode (only
     * the ctime, which Java does not show), so readability is asked of the system on each poll
     * ({@code access(2)}: the owner, the mode, ACLs, and the process's privileges). A file that
     * stops being readable is then a change like any other: the reload is tried, fails, the pool
     * stays and the reason is logged, once; readable again, it is reloaded.
     */
    private record Snapshot(boolean exists, boolean directory, long modifiedMillis, long size, Object fileKey,
                            boolean readable) {
        static Snapshot of(Path path) {
            try {
                BasicFileAttributes a = Files.readAttributes(path, BasicFileAttributes.class);
                return new Snapshot(true, a.isDirectory(), a.lastModifiedTime().toMillis(), a.size(), a.fileKey(),
                        a.isDirectory() || Files.isReadable(path));
            } catch (IOException e) {
                return new Snapshot(false, false, 0, 0, null, false);
            }
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Snapshot s && exists == s.exists && directory == s.directory
                    && modifiedMillis == s.modifiedMillis && size == s.size && Objects.equals(fileKey, s.fileKey)
                    && readable == s.readable;
        }

        @Override
        public int hashCode() {
            return Objects.hash(exists, directory, modifiedMillis, size, fileKey, readable);
        }
    }
}
