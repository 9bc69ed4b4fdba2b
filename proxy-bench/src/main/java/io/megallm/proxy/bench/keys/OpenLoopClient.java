package io.megallm.proxy.bench.keys;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.time.Duration;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.locks.LockSupport;

/**
 * A fixed-rate (open-loop) client: request {@code i} is sent at {@code start + i / rate} whatever
 * happened to the earlier ones, so a proxy that slows down or makes clients wait does not lower
 * the load it is offered. Each request's send time, end time and status are kept.
 */
final class OpenLoopClient {

    /** No answer (connection error). */
    static final int FAILED = 0;
    /** No answer within the request timeout. */
    static final int TIMED_OUT = -1;
    /** Still waiting when the drain time ran out. */
    static final int UNFINISHED = -2;

    /** Per request: offsets from the start in nanoseconds, and the status (or one of the codes above). */
    record Outcome(long[] sentAt, long[] doneAt, int[] status) {
        int size() {
            return status.length;
        }
    }

    private OpenLoopClient() {
    }

    /**
     * Sends {@code rps} requests a second for {@code durationNanos} from {@code startNanos}, then waits
     * up to {@code drainNanos} for the last answers. Returns when every request ended or the drain ran out.
     */
    static Outcome run(URI uri, String body, double rps, long startNanos, long durationNanos, Duration requestTimeout,
                       long drainNanos) throws InterruptedException {
        return run(java.util.List.of(uri), body, rps, startNanos, durationNanos, requestTimeout, drainNanos);
    }

    /** The same, request {@code i} going to {@code uris[i % n]}: round robin, as Nginx's upstream block does. */
    static Outcome run(java.util.List<URI> uris, String body, double rps, long startNanos, long durationNanos,
                       Duration requestTimeout, long drainNanos) throws InterruptedException {
        int n = (int) Math.floor(rps * durationNanos / 1e9);
        AtomicLongArray done = new AtomicLongArray(n);
        AtomicIntegerArray status = new AtomicIntegerArray(n);
        long[] sent = new long[n];
        AtomicInteger pending = new AtomicInteger(n);
        // Few threads: they only hand finished exchanges over; the sockets are the client's selector's.
        ExecutorService pool = Executors.newFixedThreadPool(2, r -> {
            Thread t = new Thread(r, "keys-bench-client");
            t.setDaemon(true);
            return t;
        });
        HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).executor(pool)
                .connectTimeout(Duration.ofSeconds(5)).build();
        HttpRequest[] requests = new HttpRequest[uris.size()];
        for (int u = 0; u < requests.length; u++) {
            requests[u] = HttpRequest.newBuilder(uris.get(u)).timeout(requestTimeout)
                    .header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(body)).build();
        }
        try {
            for (int i = 0; i < n; i++) {
                long due = startNanos + (long) (i * 1e9 / rps);
                long wait = due - System.nanoTime();
                if (wait > 0) {
                    LockSupport.parkNanos(wait);
                }
                int index = i;
                sent[i] = System.nanoTime() - startNanos;
                status.set(i, UNFINISHED);
                client.sendAsync(requests[i % requests.length], HttpResponse.BodyHandlers.discarding()).whenComplete((resp, err) -> {
                    done.set(index, System.nanoTime() - startNanos);
                    status.set(index, resp != null ? resp.statusCode() : code(err));
                    pending.decrementAndGet();
                });
            }
            long deadline = System.nanoTime() + drainNanos;
            while (pending.get() > 0 && System.nanoTime() < deadline) {
                Thread.sleep(20);
            }
        } finally {
            pool.shutdownNow();
            pool.awaitTermination(5, TimeUnit.SECONDS);
        }
        long[] doneAt = new long[n];
        int[] codes = new int[n];
        for (int i = 0; i < n; i++) {
            codes[i] = status.get(i);
            doneAt[i] = codes[i] == UNFINISHED ? -1 : done.get(i);
        }
        return new Outcome(sent, doneAt, codes);
    }

    private static int code(Throwable err) {
        Throwable cause = err instanceof CompletionException && err.getCause() != null ? err.getCause() : err;
        return cause instanceof HttpTimeoutException ? TIMED_OUT : FAILED;
    }

    static String label(int status) {
        return switch (status) {
            case FAILED -> "connection error";
            case TIMED_OUT -> "timeout";
            case UNFINISHED -> "unfinished";
            default -> Integer.toString(status);
        };
    }
}
