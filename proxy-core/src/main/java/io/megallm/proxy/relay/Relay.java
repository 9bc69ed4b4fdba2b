package io.megallm.proxy.relay;

import io.megallm.proxy.http.ErrorResponses;
import io.megallm.proxy.http.Exchange;
import io.megallm.proxy.http.InboundRequest;
import io.megallm.proxy.http.ServerLifecycle;
import io.megallm.proxy.key.KeyPool;
import io.megallm.proxy.key.KeySelector;
import io.megallm.proxy.key.KeyWaiters;
import io.megallm.proxy.key.RetryBudget;
import io.megallm.proxy.upstream.BaseUrls;
import io.megallm.proxy.upstream.UpstreamPools;
import io.netty.buffer.ByteBuf;
import io.netty.channel.EventLoop;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.QueryStringDecoder;

import java.util.Locale;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;

/** Forwards {@code /v1/**} requests upstream with a pool key, failing over as contract §7 says. */
public final class Relay {

    private final KeyPool keys;
    private final KeySelector selector;
    private final BaseUrls urls;
    private final RelaySettings settings;
    private final ServerLifecycle lifecycle;
    private final RelayEvents events;
    private final DefaultModel defaultModel;
    private final KeyAccess access;
    private final RequestGate gate;
    private final ConcurrentMap<EventLoop, SilenceWatch> watches = new ConcurrentHashMap<>();

    public Relay(KeyPool keys, UpstreamPools pools, RelaySettings settings, ServerLifecycle lifecycle) {
        this(keys, pools, settings, lifecycle, RelayEvents.NONE);
    }

    public Relay(KeyPool keys, UpstreamPools pools, RelaySettings settings, ServerLifecycle lifecycle,
                 RelayEvents events) {
        this(keys, pools, settings, lifecycle, events, KeyAccess.NONE);
    }

    public Relay(KeyPool keys, UpstreamPools pools, RelaySettings settings, ServerLifecycle lifecycle,
                 RelayEvents events, KeyAccess access) {
        this(keys, pools, settings, lifecycle, events, access, RequestGate.OPEN);
    }

    public Relay(KeyPool keys, UpstreamPools pools, RelaySettings settings, ServerLifecycle lifecycle,
                 RelayEvents events, KeyAccess access, RequestGate gate) {
        this(keys, BaseUrls.of(pools), settings, lifecycle, events, access, gate);
    }

    /** With the base URLs of contract §15 (one or several). */
    public Relay(KeyPool keys, BaseUrls urls, RelaySettings settings, ServerLifecycle lifecycle,
                 RelayEvents events, KeyAccess access, RequestGate gate) {
        this.gate = gate;
        this.access = access;
        this.keys = keys;
        this.selector = new KeySelector(keys);
        this.urls = urls;
        this.settings = settings;
        this.lifecycle = lifecycle;
        this.events = events;
        this.defaultModel = DefaultModel.of(settings.defaultModel());
    }

    /** Handles a request whose path starts with {@code /v1}; {@code rest} is what follows, query included. */
    public void forward(Exchange exchange, String rest) {
        InboundRequest request = exchange.request();
        if (!TargetPath.safe(rest)) {
            exchange.respondError(HttpResponseStatus.BAD_REQUEST, ErrorResponses.INVALID_REQUEST,
                    "invalid_path", "The request path may not contain '.' or '..' segments, encoded slashes or backslashes.");
            return;
        }
        JsonBodyCheck.Result body = JsonBodyCheck.Result.NOT_JSON;
        events.requestBytes(request.body().readableBytes());
        if (JsonBodyCheck.appliesTo(request.headers().get(HttpHeaderNames.CONTENT_TYPE), request.body())) {
            body = JsonBodyCheck.check(request.body());
            exchange.describe(body.model(), body.stream());
            if (body.error() != null) {
                exchange.respondError(HttpResponseStatus.BAD_REQUEST, ErrorResponses.INVALID_REQUEST,
                        "invalid_json", body.error());
                return;
            }
            if (body.model() == null && defaultModel != null && DefaultModel.appliesTo(rest)) {
                ByteBuf rewritten = defaultModel.insertInto(request.body(), exchange.alloc());
                if (rewritten != null) {
                    request.replaceBody(rewritten);
                    exchange.describe(settings.defaultModel(), body.stream());
                }
            }
        }
        // A body not read as JSON (another Content-Type) may ask for a stream all the same, and
        // the upstream may take it: for a client's max_streams it counts as one, or a text/plain
        // label would open streams past the limit.
        boolean stream = body == JsonBodyCheck.Result.NOT_JSON ? request.body().isReadable() : body.stream();
        boolean uncountedStream = false;
        if (stream && reportsUsageOnRequest(rest)) {
            // Read as JSON whatever its label: the upstream may read a text/plain body as JSON too,
            // even one ours refuses (NaN): that one cannot be shown to ask for its usage.
            JsonBodyCheck.Result asked = body == JsonBodyCheck.Result.NOT_JSON ? JsonBodyCheck.check(request.body()) : body;
            uncountedStream = asked.error() != null || (asked.stream() && !asked.usageAsked());
        }
        if (!gate.admit(exchange, exchange.model(), stream, uncountedStream)) {
            return;
        }
        new RelayCall(this, exchange, rest, body.affinity()).start();
    }

    /** The paths whose streams carry their usage only when the request asks for it ({@code stream_options}). */
    private static boolean reportsUsageOnRequest(String rest) {
        int q = rest.indexOf('?');
        String path = q < 0 ? rest : rest.substring(0, q);
        try {
            path = QueryStringDecoder.decodeComponent(path);
        } catch (IllegalArgumentException e) {
            // A broken escape: judged as written (the upstream refuses it, or reads it as written).
        }
        // As the upstream routes it, not as written: servers decode escapes (uvicorn reads %63 as
        // c), lenient ones ignore case, empty segments (nginx merges slashes), a trailing slash and
        // ;params. Matched as written, any such spelling streamed uncounted past a token limit.
        StringBuilder routed = new StringBuilder(path.length());
        for (String segment : path.split("/")) {
            int params = segment.indexOf(';');
            String s = params < 0 ? segment : segment.substring(0, params);
            if (!s.isEmpty()) {
                routed.append('/').append(s.toLowerCase(Locale.ROOT));
            }
        }
        String routedPath = routed.toString();
        return routedPath.equals("/chat/completions") || routedPath.equals("/completions");
    }

    /** The silence timeouts of one event loop, made on first use there. */
    SilenceWatch silenceWatch(EventLoop loop) {
        SilenceWatch w = watches.get(loop);
        return w != null ? w : watches.computeIfAbsent(loop, SilenceWatch::new);
    }

    /**
     * What a request may do beyond its own attempts: resend under the retry budget, wait for a
     * key. {@code budget} null: no budget; {@code waiters} null or {@code keyWaitNanos} 0: no waiting.
     */
    public record KeyAccess(RetryBudget budget, KeyWaiters waiters, long keyWaitNanos) {
        public static final KeyAccess NONE = new KeyAccess(null, null, 0);
    }

    KeyAccess access() {
        return access;
    }

    KeyPool keys() {
        return keys;
    }

    KeySelector selector() {
        return selector;
    }

    BaseUrls baseUrls() {
        return urls;
    }

    RelaySettings settings() {
        return settings;
    }

    ServerLifecycle lifecycle() {
        return lifecycle;
    }

    RelayEvents events() {
        return events;
    }
}
