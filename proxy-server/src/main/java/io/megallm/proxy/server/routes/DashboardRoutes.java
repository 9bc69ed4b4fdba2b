package io.megallm.proxy.server.routes;

import io.megallm.proxy.http.ErrorResponses;
import io.megallm.proxy.http.Exchange;
import io.megallm.proxy.server.Version;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpResponseStatus;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.Map;

/**
 * {@code GET /admin/}: the operator dashboard, three small files from the jar (no CDN, no build
 * step). The page itself holds no data: everything it shows comes from {@code /admin/keys},
 * {@code /admin/usage} and {@code /metrics}, which keep their own access rule. So with
 * {@code ADMIN_TOKEN} set the page loads for anyone and asks for the token once (kept in the
 * tab's session storage and sent as a bearer header); without it, the page answers loopback
 * clients only, like every admin route.
 */
final class DashboardRoutes {

    /**
     * The strictest policy the page works with: its own script and stylesheet, requests to this
     * proxy, nothing inline, nothing framed, no forms posted anywhere.
     */
    static final String CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
            + "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    private static volatile Map<String, DocsRoutes.Asset> assets;

    private final AccessControl access;

    DashboardRoutes(AccessControl access) {
        this.access = access;
    }

    /** Answers and returns true when {@code path} is one of the dashboard's. */
    boolean handle(Exchange exchange, String path) {
        String name = switch (path) {
            case "/admin", "/admin/", "/admin/index.html" -> "/admin/";
            case "/admin/dashboard.js", "/admin/dashboard.css" -> path;
            default -> null;
        };
        if (name == null) {
            return false;
        }
        HttpMethod method = exchange.request().method();
        boolean head = method.equals(HttpMethod.HEAD);
        if (!head && !method.equals(HttpMethod.GET)) {
            FullHttpResponse response = ErrorResponses.error(exchange.alloc(), HttpResponseStatus.METHOD_NOT_ALLOWED,
                    ErrorResponses.INVALID_REQUEST, "method_not_allowed", "Use GET or HEAD for " + path + ".");
            response.headers().set(HttpHeaderNames.ALLOW, "GET, HEAD");
            exchange.respond(response);
            return true;
        }
        if (!access.adminTokenSet() && !access.admitAdmin(exchange)) {
            return true;
        }
        exchange.respond(assets().get(name).response(head, false));
        return true;
    }

    private static Map<String, DocsRoutes.Asset> assets() {
        Map<String, DocsRoutes.Asset> a = assets;
        if (a == null) {
            String v = Version.VALUE;
            String page = new String(read("/admin/index.html"), StandardCharsets.UTF_8).replace("{{v}}", v);
            a = Map.of(
                    "/admin/", new DocsRoutes.Asset(page.getBytes(StandardCharsets.UTF_8), "text/html; charset=utf-8",
                            "no-cache", CSP),
                    "/admin/dashboard.js", new DocsRoutes.Asset(read("/admin/dashboard.js"),
                            DocsRoutes.contentType("dashboard.js"), "no-cache"),
                    "/admin/dashboard.css", new DocsRoutes.Asset(read("/admin/dashboard.css"),
                            DocsRoutes.contentType("dashboard.css"), "no-cache"));
            assets = a;
        }
        return a;
    }

    private static byte[] read(String resource) {
        try (InputStream in = DashboardRoutes.class.getResourceAsStream(resource)) {
            if (in == null) {
                throw new IllegalStateException("dashboard resource missing from the jar: " + resource);
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new IllegalStateException("cannot read dashboard resource " + resource, e);
        }
    }
}
