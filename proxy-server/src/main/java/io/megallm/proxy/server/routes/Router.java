package io.megallm.proxy.server.routes;

import io.megallm.proxy.http.ErrorResponses;
import io.megallm.proxy.http.Exchange;
import io.megallm.proxy.http.HeadCheck;
import io.megallm.proxy.http.JsonText;
import io.megallm.proxy.http.RequestRouter;
import io.megallm.proxy.key.ApiKey;
import io.megallm.proxy.key.KeyPool;
import io.megallm.proxy.key.KeyState;
import io.megallm.proxy.key.KeyStats;
import io.megallm.proxy.key.ReloadResult;
import io.megallm.proxy.key.ResetResult;
import io.megallm.proxy.relay.Relay;
import io.megallm.proxy.server.Version;
import io.megallm.proxy.upstream.BaseUrls;
import io.megallm.proxy.server.clients.ClientGate;
import io.megallm.proxy.server.usage.UsageLedger;
import io.megallm.proxy.server.keys.KeyFile;
import io.megallm.proxy.server.metrics.ProxyMetrics;
import io.megallm.proxy.server.metrics.ScrapeText;
import io.megallm.proxy.server.shared.SharedState;
import io.netty.buffer.ByteBuf;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpVersion;

/**
 * Maps a request to its answer (contract §5). As the reader's {@link HeadCheck} it refuses a
 * {@code /v1/**} request without a valid client key as soon as its head is read, so an anonymous
 * client never gets a body buffered; installed without that hook, it checks the key on routing.
 */
public final class Router implements RequestRouter, HeadCheck {

    private final Relay relay;
    private final KeyPool keys;
    private final KeyFile keyFile;
    private final AccessControl access;
    private final ProxyMetrics metrics;
    private final DocsRoutes docs = new DocsRoutes();
    private final DashboardRoutes dashboard;
    private final ClientGate gate;
    private final UsageLedger usage;
    private volatile SharedState shared;
    private volatile BaseUrls urls;

    public Router(Relay relay, KeyPool keys, KeyFile keyFile, AccessControl access) {
        this(relay, keys, keyFile, access, null);
    }

    public Router(Relay relay, KeyPool keys, KeyFile keyFile, AccessControl access, ProxyMetrics metrics) {
        this(relay, keys, keyFile, access, metrics, new ClientGate(() -> System.currentTimeMillis() / 1000),
                new UsageLedger(System::currentTimeMillis));
    }

    public Router(Relay relay, KeyPool keys, KeyFile keyFile, AccessControl access, ProxyMetrics metrics,
                  ClientGate gate, UsageLedger usage) {
        this.gate = gate;
        this.usage = usage;
        this.relay = relay;
        this.keys = keys;
        this.keyFile = keyFile;
        this.access = access;
        this.metrics = metrics;
        this.dashboard = new DashboardRoutes(access);
    }

    /** With REDIS_URL: /health then says whether the shared state is reachable (contract §14). */
    public void sharedState(SharedState shared) {
        this.shared = shared;
    }

    /** The base URLs of contract §15: /health lists them when there are several. */
    public void baseUrls(BaseUrls urls) {
        this.urls = urls;
    }

    @Override
    public boolean admit(Exchange exchange) {
        String path = exchange.request().path();
        if (!relayed(path)) {
            if (exchange.request().bodyFollows()) {
                // No local route reads a body: answered on the head, before any body byte is kept,
                // so that no one (anonymous, unauthorised) makes the proxy hold MAX_REQUEST_BODY
                // per connection on /health, /admin/* or a 404. The unread body closes the connection.
                route(exchange);
                return false;
            }
            return true;
        }
        exchange.route(RouteLabels.forRelay(path));
        return access.admitClient(exchange) && gate.admitHead(exchange);
    }

    @Override
    public void route(Exchange exchange) {
        String path = exchange.request().path();
        if (relayed(path)) {
            exchange.route(RouteLabels.forRelay(path));
            if (exchange.admittedOnHead() || (access.admitClient(exchange) && gate.admitHead(exchange))) {
                relay.forward(exchange, exchange.request().uri().substring(3));
            }
            return;
        }
        HttpMethod method = exchange.request().method();
        exchange.route(RouteLabels.forLocal(path));
        if (docs.handle(exchange, path) || dashboard.handle(exchange, path)) {
            return;
        }
        switch (path) {
            case "/metrics" -> {
                if (metrics != null && allow(exchange, method, HttpMethod.GET) && access.admitAdmin(exchange)) {
                    // Written once into the response buffer, a piece at a time (ScrapeText): with many
                    // clients or keys a scrape is megabytes, and each whole copy of it was a risk.
                    ByteBuf body = exchange.alloc().buffer(64 * 1024);
                    try {
                        ScrapeText text = new ScrapeText(body);
                        metrics.scrape(text);
                        usage.prometheus(text, access.clients().clients());
                        text.finish();
                    } catch (RuntimeException | Error e) {
                        body.release();
                        throw e;
                    }
                    FullHttpResponse response = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK, body);
                    response.headers().set(HttpHeaderNames.CONTENT_TYPE, ProxyMetrics.contentType())
                            .setInt(HttpHeaderNames.CONTENT_LENGTH, body.readableBytes());
                    exchange.respond(noStore(response));
                } else if (metrics == null) {
                    notFound(exchange, method, path);
                }
            }
            case "/health" -> {
                if (allow(exchange, method, HttpMethod.GET)) {
                    health(exchange);
                }
            }
            case "/admin/reload-keys" -> {
                if (allow(exchange, method, HttpMethod.POST) && access.admitAdmin(exchange)) {
                    reloadKeys(exchange);
                }
            }
            case "/admin/reset-failed-keys" -> {
                if (allow(exchange, method, HttpMethod.POST) && access.admitAdmin(exchange)) {
                    resetKeys(exchange);
                }
            }
            case "/admin/usage" -> {
                if (allow(exchange, method, HttpMethod.GET) && access.admitAdmin(exchange)) {
                    exchange.respond(noStore(ErrorResponses.json(exchange.alloc(), HttpResponseStatus.OK,
                            usage.json(keys.keys(), access.clients().clients()))));
                }
            }
            case "/admin/keys" -> {
                if (allow(exchange, method, HttpMethod.GET) && access.admitAdmin(exchange)) {
                    listKeys(exchange);
                }
            }
            default -> notFound(exchange, method, path);
        }
    }

    private static boolean relayed(String path) {
        return path.equals("/v1") || path.startsWith("/v1/");
    }

    private static void notFound(Exchange exchange, HttpMethod method, String path) {
        // A client configured with http://host:8000 instead of http://host:8000/v1 asks for
        // /chat/completions: say what it lacks (the Python audit found the bare 404 puzzling).
        String hint = RouteLabels.knownWithoutV1(path)
                ? " The API is under /v1: a client's base URL ends in /v1 (http://host:8000/v1)." : "";
        exchange.respondError(HttpResponseStatus.NOT_FOUND, ErrorResponses.NOT_FOUND, "not_found",
                "No route for " + method.name() + " " + truncate(path) + "." + hint);
    }

    private static boolean allow(Exchange exchange, HttpMethod actual, HttpMethod expected) {
        if (actual.equals(expected) || (expected.equals(HttpMethod.GET) && actual.equals(HttpMethod.HEAD))) {
            return true;
        }
        FullHttpResponse response = ErrorResponses.error(exchange.alloc(), HttpResponseStatus.METHOD_NOT_ALLOWED,
                ErrorResponses.INVALID_REQUEST, "method_not_allowed",
                "Use " + expected.name() + " for " + exchange.request().path() + ".");
        // A GET route answers HEAD too (above), so both are what it allows.
        response.headers().set(HttpHeaderNames.ALLOW, expected.equals(HttpMethod.GET) ? "GET, HEAD" : expected.name());
        exchange.respond(response);
        return false;
    }

    private void health(Exchange exchange) {
        KeyStats s = keys.stats();
        boolean healthy = s.available() > 0;
        String body = "{\"status\":\"" + (healthy ? "healthy" : "unhealthy") + "\",\"key_stats\":{"
                + "\"total\":" + s.total()
                + ",\"available\":" + s.available()
                + ",\"failed\":" + s.failed()
                + ",\"cooling_down\":" + s.coolingDown()
                + "}" + sharedStateField() + upstreamsField()
                + ",\"version\":" + JsonText.quote(Version.VALUE) + "}";
        exchange.respond(noStore(ErrorResponses.json(exchange.alloc(),
                healthy ? HttpResponseStatus.OK : HttpResponseStatus.SERVICE_UNAVAILABLE, body)));
    }

    /** Only with several base URLs: each with its state (available, or paused after a failed connection). */
    private String upstreamsField() {
        BaseUrls u = urls;
        if (u == null || u.size() < 2) {
            return "";
        }
        StringBuilder b = new StringBuilder(",\"upstreams\":[");
        for (int i = 0; i < u.size(); i++) {
            b.append(i == 0 ? "" : ",").append("{\"url\":").append(JsonText.quote(u.pools(i).target().toString()))
                    .append(",\"state\":\"").append(u.state(i)).append("\"}");
        }
        return b.append(']').toString();
    }

    /** Absent without REDIS_URL; Redis being away does not make the instance unhealthy (it serves alone). */
    private String sharedStateField() {
        SharedState s = shared;
        if (s == null) {
            return "";
        }
        return ",\"shared_state\":\"" + (s.up() ? "ok" : "unavailable") + "\"";
    }

    private void reloadKeys(Exchange exchange) {
        KeyFile.Outcome outcome = keyFile.reload();
        if (outcome.problem() != null) {
            exchange.respondError(HttpResponseStatus.INTERNAL_SERVER_ERROR, ErrorResponses.SERVER,
                    "keys_file_unreadable",
                    "The keys file could not be read; the pool is unchanged. See app.log for the reason.");
            return;
        }
        ReloadResult r = outcome.result();
        exchange.respond(noStore(ErrorResponses.json(exchange.alloc(), HttpResponseStatus.OK,
                "{\"total\":" + r.total() + ",\"added\":" + r.added() + ",\"removed\":" + r.removed()
                        + ",\"kept\":" + r.kept() + "}")));
    }

    private void resetKeys(Exchange exchange) {
        ResetResult r = keys.resetFailed();
        exchange.respond(noStore(ErrorResponses.json(exchange.alloc(), HttpResponseStatus.OK,
                "{\"reset\":" + r.reset() + ",\"total\":" + r.total() + ",\"available\":" + r.available() + "}")));
    }

    private void listKeys(Exchange exchange) {
        StringBuilder b = new StringBuilder("{\"keys\":[");
        long now = keys.now();
        boolean first = true;
        for (ApiKey k : keys.keys()) {
            KeyState s = k.state();
            KeyState.Kind kind = s.effectiveKind(now);
            long cooldown = keys.cooldownRemainingSeconds(k);
            long recheck = kind == KeyState.Kind.FAILED ? keys.recheckInSeconds(k) : -1;
            if (!first) {
                b.append(',');
            }
            first = false;
            b.append("{\"key\":").append(JsonText.quote(k.masked()))
                    .append(",\"state\":\"").append(stateName(kind)).append('"')
                    .append(",\"cooldown_remaining_s\":").append(cooldown >= 0 ? Long.toString(cooldown) : "null")
                    .append(",\"failure_reason\":").append(kind == KeyState.Kind.AVAILABLE ? "null" : JsonText.quote(s.reason()))
                    .append(",\"recheck_in_s\":").append(recheck >= 0 ? Long.toString(recheck) : "null")
                    .append(",\"requests\":").append(k.requests())
                    .append(",\"failures\":").append(k.failures())
                    .append(",\"last_status\":").append(k.lastStatus() == 0 ? "null" : Integer.toString(k.lastStatus()))
                    .append(",\"tokens\":{\"prompt\":").append(k.promptTokens())
                    .append(",\"completion\":").append(k.completionTokens())
                    .append(",\"cached\":").append(k.cachedTokens()).append('}')
                    .append('}');
        }
        b.append("]}");
        exchange.respond(noStore(ErrorResponses.json(exchange.alloc(), HttpResponseStatus.OK, b.toString())));
    }

    /**
     * /health and the admin answers (the pool's state, usage per client, the metrics) are the
     * operator's: no browser or cache in between may keep a copy of them.
     */
    private static FullHttpResponse noStore(FullHttpResponse response) {
        response.headers().set(HttpHeaderNames.CACHE_CONTROL, "no-store");
        return response;
    }

    private static String stateName(KeyState.Kind kind) {
        return switch (kind) {
            case AVAILABLE -> "available";
            case COOLING_DOWN -> "cooling_down";
            case FAILED -> "failed";
        };
    }

    private static String truncate(String path) {
        return path.length() > 100 ? path.substring(0, 100) + "…" : path;
    }
}
