package io.megallm.proxy.server.metrics;

import io.megallm.proxy.clock.EventClock;
import io.megallm.proxy.http.Exchange;
import io.megallm.proxy.http.ExchangeObserver;
import io.megallm.proxy.http.ServerLifecycle;
import io.megallm.proxy.key.ApiKey;
import io.megallm.proxy.key.KeyPool;
import io.megallm.proxy.key.KeyState;
import io.megallm.proxy.key.KeyLifecycle;
import io.megallm.proxy.key.KeyWaiters;
import io.megallm.proxy.relay.RelayEvents;
import io.megallm.proxy.server.logs.LogWriteWatch;
import io.megallm.proxy.upstream.UpstreamPools;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicReferenceArray;
import java.util.concurrent.atomic.LongAdder;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

/**
 * The proxy's metrics. Our own few lines instead of a metrics library: on the request path
 * every update is a lock-free {@link LongAdder} add into a counter resolved once (arrays indexed
 * by enum, a map read for the per-request label set), nothing per chunk, and a scrape reads
 * the pool and the adders. Client libraries we looked at take a lock while a scrape runs.
 */
public final class ProxyMetrics implements RelayEvents, ExchangeObserver {

    private final KeyPool keys;
    private final ServerLifecycle lifecycle;
    private final UpstreamPools pools;
    private final KeyWaiters waiters;
    /** Per route label: one adder per method class and status (0 = no status), made on first use. */
    private final Map<String, AtomicReferenceArray<LongAdder>> requests = new ConcurrentHashMap<>();
    private final LongAdder[] attempts = new LongAdder[RelayEvents.Outcome.values().length];
    private final LongAdder[] endings = new LongAdder[Exchange.Ending.values().length];
    private final LongAdder keySwitches = new LongAdder();
    private final LongAdder retries = new LongAdder();
    private final LongAdder truncated = new LongAdder();
    private final LongAdder requestBytes = new LongAdder();
    private final LongAdder responseBytes = new LongAdder();
    private final LongAdder[] keyWaits = new LongAdder[RelayEvents.KeyWait.values().length];
    private final Histogram keyWaitTime = new Histogram();
    private final LongAdder retriesRefused = new LongAdder();
    private final LongAdder affinityFirstChoice = new LongAdder();
    private final LongAdder affinityStandIn = new LongAdder();
    private final Histogram upstreamHead = new Histogram();
    private final Histogram upstreamDone = new Histogram();
    private final Histogram requestDuration = new Histogram();
    /** Per mask: requests and failures, kept from going down when one of two keys with a mask is removed. */
    private final LabelSums<ApiKey> keyCounts = new LabelSums<>(2, ApiKey::masked, (k, row) -> {
        row[0] += k.requests();
        row[1] += k.failures();
    });
    private volatile io.megallm.proxy.server.shared.SharedState shared;

    public ProxyMetrics(KeyPool keys, ServerLifecycle lifecycle, UpstreamPools pools) {
        this(keys, lifecycle, pools, null);
    }

    /** {@code waiters}: the requests waiting for a key now, for a gauge; null without waiting. */
    public ProxyMetrics(KeyPool keys, ServerLifecycle lifecycle, UpstreamPools pools, KeyWaiters waiters) {
        this.waiters = waiters;
        this.keys = keys;
        this.lifecycle = lifecycle;
        this.pools = pools;
        for (int i = 0; i < attempts.length; i++) {
            attempts[i] = new LongAdder();
        }
        for (int i = 0; i < endings.length; i++) {
            endings[i] = new LongAdder();
        }
        for (int i = 0; i < keyWaits.length; i++) {
            keyWaits[i] = new LongAdder();
        }
    }

    /** With REDIS_URL: a gauge says whether the shared state is reachable. */
    private volatile io.megallm.proxy.upstream.BaseUrls urls;

    public void sharedState(io.megallm.proxy.server.shared.SharedState shared) {
        this.shared = shared;
    }

    /** The base URLs of contract §15, for megallm_upstream_base_url_up. */
    public void baseUrls(io.megallm.proxy.upstream.BaseUrls urls) {
        this.urls = urls;
    }

    // ---- recording (event loops) ----------------------------------------------------------------

    @Override
    public void attempt(Outcome outcome) {
        attempts[outcome.ordinal()].increment();
    }

    @Override
    public void keyWait(KeyWait outcome, long nanos) {
        keyWaits[outcome.ordinal()].increment();
        if (outcome != KeyWait.FULL) {
            keyWaitTime.recordNanos(nanos);
        }
    }

    @Override
    public void retryRefused() {
        retriesRefused.increment();
    }

    @Override
    public void affinity(boolean firstChoice) {
        (firstChoice ? affinityFirstChoice : affinityStandIn).increment();
    }

    @Override
    public void keySwitch() {
        keySwitches.increment();
    }

    @Override
    public void retry() {
        retries.increment();
    }

    @Override
    public void upstreamHead(long nanos) {
        upstreamHead.recordNanos(nanos);
    }

    @Override
    public void upstreamDone(long nanos) {
        upstreamDone.recordNanos(nanos);
    }

    @Override
    public void truncated() {
        truncated.increment();
    }

    @Override
    public void requestBytes(long bytes) {
        requestBytes.add(bytes);
    }

    /**
     * Counts the request under its route, method and status by index: a label string built and
     * hashed per request cost more than the rest of this method.
     */
    @Override
    public void onEnd(Exchange exchange) {
        String route = exchange.route();
        AtomicReferenceArray<LongAdder> byRoute = requests.get(route);
        if (byRoute == null) {
            byRoute = requests.computeIfAbsent(route, r -> new AtomicReferenceArray<>(METHOD_CLASSES.length * STATUSES));
        }
        int status = exchange.status();
        int i = methodClass(exchange.request().method().name()) * STATUSES + (status > 0 && status < STATUSES ? status : 0);
        LongAdder counter = byRoute.get(i);
        if (counter == null) {
            byRoute.compareAndSet(i, null, new LongAdder());
            counter = byRoute.get(i);
        }
        counter.increment();
        endings[exchange.ending().ordinal()].increment();
        responseBytes.add(exchange.bytesOut());
        if (route.startsWith("/v1")) {
            // The API's latency: /health checks and scrapes would pull its percentiles down.
            requestDuration.recordNanos(EventClock.nanoTime() - exchange.request().startNanos());
        }
    }

    private long pacedKeys() {
        long now = keys.now();
        return keys.keys().stream().filter(k -> k.pacedPerSecond(now) > 0).count();
    }

    private static final String[] METHOD_CLASSES = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "OTHER"};
    /** HTTP status codes have three digits; index 0 stands for "none". */
    private static final int STATUSES = 1000;

    private static final Map<String, Integer> METHOD_INDEX = IntStream.range(0, METHOD_CLASSES.length - 1).boxed()
            .collect(Collectors.toUnmodifiableMap(i -> METHOD_CLASSES[i], i -> i));

    /** The index of a method's label in {@link #METHOD_CLASSES}; "OTHER" (the last) for the rest. */
    private static int methodClass(String method) {
        return METHOD_INDEX.getOrDefault(method, METHOD_CLASSES.length - 1);
    }

    // ---- exposition (a scrape) -----------------------------------------------------------------

    public static String contentType() {
        return PrometheusText.CONTENT_TYPE;
    }

    /** The metrics, appended to {@code out}: a scrape is written once, not copied from string to string. */
    public void scrape(ScrapeText out) {
        PrometheusText t = new PrometheusText(out);
        t.family("megallm_requests_total", "counter", "Requests answered, by route, method and status.");
        requests.forEach((route, counters) -> {
            for (int i = 0; i < counters.length(); i++) {
                LongAdder c = counters.get(i);
                if (c != null) {
                    int status = i % STATUSES;
                    t.sample("megallm_requests_total", c.sum(), "route", route, "method", METHOD_CLASSES[i / STATUSES],
                            "status", status == 0 ? "none" : Integer.toString(status));
                }
            }
        });
        t.family("megallm_request_endings_total", "counter",
                "Requests by how they ended: complete, client_gone (client disconnected), truncated (upstream failed mid-answer),"
                        + " shutdown (still running when SHUTDOWN_GRACE ran out).");
        for (Exchange.Ending e : Exchange.Ending.values()) {
            t.sample("megallm_request_endings_total", endings[e.ordinal()].sum(), "ending", e.name().toLowerCase());
        }
        t.family("megallm_upstream_attempts_total", "counter", "Upstream attempts by outcome.");
        for (Outcome o : Outcome.values()) {
            t.sample("megallm_upstream_attempts_total", attempts[o.ordinal()].sum(), "outcome", outcomeLabel(o));
        }
        t.family("megallm_key_switches_total", "counter", "Times a request moved to another key.")
                .sample("megallm_key_switches_total", keySwitches.sum());
        t.family("megallm_key_trials_total", "counter",
                "Trials of failed keys by outcome: passed (back in rotation), failed (wait doubled), no_answer (tried again).");
        for (KeyLifecycle.TrialOutcome o : KeyLifecycle.TrialOutcome.values()) {
            t.sample("megallm_key_trials_total", keys.lifecycle().trials(o), "outcome", o.name().toLowerCase());
        }
        t.family("megallm_key_waits_total", "counter",
                "Requests that waited for a key (KEY_WAIT), by outcome: served, timed_out, client_gone, full (refused at once).");
        for (KeyWait w : KeyWait.values()) {
            t.sample("megallm_key_waits_total", keyWaits[w.ordinal()].sum(), "outcome", w.name().toLowerCase());
        }
        t.histogram("megallm_key_wait_seconds", "Time requests waited for a key.", keyWaitTime);
        t.family("megallm_key_waiters", "gauge", "Requests waiting for a key now.")
                .sample("megallm_key_waiters", waiters == null ? 0 : waiters.size());
        t.family("megallm_keys_paced", "gauge",
                "Keys spaced at the rate they accepted between two close 429s (see README, pacing).")
                .sample("megallm_keys_paced", pacedKeys());
        t.family("megallm_retries_refused_total", "counter",
                "Resends after transient failures refused by the retry budget (the failure went to the client).")
                .sample("megallm_retries_refused_total", retriesRefused.sum());
        t.family("megallm_affinity_total", "counter",
                "Requests with a prompt_cache_key/user: hit (their own key), moved (a stand-in while their key is out).");
        t.sample("megallm_affinity_total", affinityFirstChoice.sum(), "result", "hit");
        t.sample("megallm_affinity_total", affinityStandIn.sum(), "result", "moved");
        t.family("megallm_retries_total", "counter", "Same-key retries after a transient failure.")
                .sample("megallm_retries_total", retries.sum());
        t.family("megallm_truncated_streams_total", "counter", "Answers cut because the upstream failed after the head.")
                .sample("megallm_truncated_streams_total", truncated.sum());
        t.family("megallm_log_write_failures_total", "counter",
                "Failed writes of app.log or access.log (a full disk): their lines are lost.")
                .sample("megallm_log_write_failures_total", LogWriteWatch.failures());
        t.family("megallm_request_body_bytes_total", "counter", "Request body bytes received for /v1.")
                .sample("megallm_request_body_bytes_total", requestBytes.sum());
        t.family("megallm_response_bytes_total", "counter",
                "Answer body bytes written to clients, chunked framing included (as access.log's bytes=).")
                .sample("megallm_response_bytes_total", responseBytes.sum());
        t.family("megallm_active_connections", "gauge", "Open client connections.")
                .sample("megallm_active_connections", lifecycle.openConnections());
        t.family("megallm_active_requests", "gauge", "Requests in flight, streams included.")
                .sample("megallm_active_requests", lifecycle.inFlight());
        t.family("megallm_active_streams", "gauge", "Event streams being relayed.")
                .sample("megallm_active_streams", lifecycle.activeStreams());
        t.family("megallm_upstream_connections", "gauge", "Open upstream connections, busy and idle.")
                .sample("megallm_upstream_connections", pools == null ? 0 : pools.openConnections());
        t.family("megallm_upstream_waiting", "gauge", "Requests waiting for a free upstream connection.")
                .sample("megallm_upstream_waiting", pools == null ? 0 : pools.waitingRequests());

        io.megallm.proxy.server.shared.SharedState sharedState = shared;
        if (sharedState != null) {
            t.family("megallm_shared_state_up", "gauge",
                    "1 while the Redis shared by the instances is reachable, 0 while this instance decides alone.")
                    .sample("megallm_shared_state_up", sharedState.up() ? 1 : 0);
        }
        long now = keys.now();
        // Keyed by the masked form: two keys that share one (the same first 8 and last 4 characters)
        // are one series, summed, as Prometheus' format wants every series once (a warning at load
        // names such masks).
        Map<String, long[]> states = new LinkedHashMap<>();
        int kinds = KeyState.Kind.values().length;
        long[] pool = new long[kinds];
        for (ApiKey k : keys.keys()) {
            int kind = k.state().effectiveKind(now).ordinal();
            states.computeIfAbsent(k.masked(), m -> new long[kinds])[kind]++;
            pool[kind]++;
        }
        t.family("megallm_keys", "gauge",
                "Keys in the pool by state, as /health counts them; written for an empty pool too, so that an alert on "
                        + "available keys fires when none is left.");
        for (KeyState.Kind s : KeyState.Kind.values()) {
            t.sample("megallm_keys", pool[s.ordinal()], "state", s.name().toLowerCase());
        }
        t.family("megallm_key_state", "gauge", "1 for the state each key (masked) is in (the count, for keys that share a mask).");
        states.forEach((mask, row) -> {
            for (KeyState.Kind s : KeyState.Kind.values()) {
                t.sample("megallm_key_state", row[s.ordinal()], "key", mask, "state", s.name().toLowerCase());
            }
        });
        Map<String, long[]> counts = keyCounts.sums(keys.keys());
        t.family("megallm_key_requests_total", "counter", "Upstream attempts per key (masked).");
        counts.forEach((mask, row) -> t.sample("megallm_key_requests_total", row[0], "key", mask));
        t.family("megallm_key_failures_total", "counter", "Rejections (401/402/403/429) per key (masked).");
        counts.forEach((mask, row) -> t.sample("megallm_key_failures_total", row[1], "key", mask));
        io.megallm.proxy.upstream.BaseUrls u = urls;
        if (u != null) {
            t.family("megallm_upstream_base_url_up", "gauge",
                    "1 while a base URL is in use, 0 while it is paused after a failed connection.");
            for (int i = 0; i < u.size(); i++) {
                t.sample("megallm_upstream_base_url_up", u.state(i).equals("available") ? 1 : 0,
                        "url", u.pools(i).target().toString());
            }
        }
        t.histogram("megallm_upstream_ttfb_seconds", "Upstream time to response head, per attempt.", upstreamHead);
        t.histogram("megallm_upstream_duration_seconds", "Upstream time from attempt start to the end of a relayed answer.",
                upstreamDone);
        t.histogram("megallm_request_duration_seconds",
                "Time from request start to the end of its answer, for /v1 requests (not health checks or scrapes).",
                requestDuration);
    }

    private static String outcomeLabel(Outcome o) {
        return switch (o) {
            case OK -> "ok";
            case STATUS_401 -> "401";
            case STATUS_402 -> "402";
            case STATUS_403 -> "403";
            case STATUS_429 -> "429";
            case STATUS_5XX -> "5xx";
            case TIMEOUT -> "timeout";
            case CONNECT_ERROR -> "connect_error";
            case CLIENT_CANCELLED -> "client_cancelled";
        };
    }
}
