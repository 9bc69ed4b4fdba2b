package io.megallm.proxy.server.routes;

import io.megallm.proxy.http.ErrorResponses;
import io.megallm.proxy.http.Exchange;
import io.megallm.proxy.http.RequestHeaders;
import io.megallm.proxy.server.clients.Client;
import io.megallm.proxy.server.clients.ClientRegistry;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.util.AsciiString;

import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.List;

/**
 * Who may call what: {@code /admin/*} and {@code /metrics} need {@code ADMIN_TOKEN} (or a
 * loopback client when it is unset); {@code /v1/**} needs one of {@code PROXY_API_KEYS} when set.
 * Secrets are compared in constant time and never echoed.
 */
public final class AccessControl {

    static final AsciiString X_API_KEY = AsciiString.cached("x-api-key");
    private static final AsciiString X_FORWARDED_FOR = AsciiString.cached("x-forwarded-for");
    private static final AsciiString X_REAL_IP = AsciiString.cached("x-real-ip");
    private static final AsciiString FORWARDED = AsciiString.cached("forwarded");
    private static final AsciiString SEC_FETCH_SITE = AsciiString.cached("sec-fetch-site");

    private final byte[] adminToken;
    private final ClientRegistry clients;

    public AccessControl(String adminToken, List<String> clientKeys) {
        this(adminToken, ClientRegistry.of(clientKeys));
    }

    public AccessControl(String adminToken, ClientRegistry clients) {
        this.adminToken = adminToken == null ? null : adminToken.getBytes(StandardCharsets.UTF_8);
        this.clients = clients;
    }

    public ClientRegistry clients() {
        return clients;
    }

    /** True when the request may use admin routes; otherwise the error has been sent. */
    boolean admitAdmin(Exchange exchange) {
        if (adminToken == null) {
            InetSocketAddress remote = exchange.request().remote();
            if (remote != null && remote.getAddress() != null && remote.getAddress().isLoopbackAddress()
                    && !relayedByAProxy(exchange.request().headers())) {
                if (!aBrowserSentByAnotherSite(exchange.request().headers())) {
                    return true;
                }
                exchange.respondError(HttpResponseStatus.FORBIDDEN, ErrorResponses.PERMISSION, "admin_cross_site",
                        "A page of another site may not use the admin routes; open them at http://localhost "
                                + "or set ADMIN_TOKEN.");
                return false;
            }
            exchange.respondError(HttpResponseStatus.FORBIDDEN, ErrorResponses.PERMISSION, "admin_loopback_only",
                    "Admin routes answer only local loopback clients while ADMIN_TOKEN is unset.");
            return false;
        }
        String presented = bearer(exchange.request().headers());
        if (presented == null) {
            exchange.respondError(HttpResponseStatus.UNAUTHORIZED, ErrorResponses.AUTHENTICATION, "missing_admin_token",
                    "Admin routes need Authorization: Bearer <ADMIN_TOKEN>.");
            return false;
        }
        if (!MessageDigest.isEqual(adminToken, presented.getBytes(StandardCharsets.UTF_8))) {
            exchange.respondError(HttpResponseStatus.FORBIDDEN, ErrorResponses.PERMISSION, "invalid_admin_token",
                    "The admin token is not valid.");
            return false;
        }
        return true;
    }

    /**
     * True when the request may use the relay; otherwise the 401 has been sent. The client found
     * is attached to the exchange, for its limits and its usage.
     */
    boolean admitClient(Exchange exchange) {
        if (!clients.required()) {
            return true;
        }
        RequestHeaders headers = exchange.request().headers();
        String presented = bearer(headers);
        if (presented == null) {
            presented = headers.get(X_API_KEY);
        }
        Client client = presented == null ? null : clients.lookup(presented.strip());
        if (client != null) {
            exchange.attach(client);
            return true;
        }
        exchange.respondError(HttpResponseStatus.UNAUTHORIZED, ErrorResponses.AUTHENTICATION, "invalid_api_key",
                "A valid proxy API key is required (Authorization: Bearer <key> or x-api-key).");
        return false;
    }

    public boolean clientKeysRequired() {
        return clients.required();
    }

    public boolean adminTokenSet() {
        return adminToken != null;
    }

    /**
     * A loopback peer that forwards for someone else (Nginx on the same host) is not a local
     * operator: without this, everyone who reaches Nginx would be admin.
     */
    /**
     * A browser on this machine is a loopback client too, so without a token any page it opens
     * could reset or reload keys (a cross-site form or fetch), or read /admin and /metrics after
     * pointing its own host name at 127.0.0.1 (DNS rebinding). A browser says where a request
     * comes from (Sec-Fetch-Site, Origin) and which host it thinks it talks to (Host): refused
     * unless the page is this proxy's own, reached by a loopback name or an address. curl and
     * scripts send a Host of the address or name they were given: localhost or 127.0.0.1 pass.
     */
    private static boolean aBrowserSentByAnotherSite(RequestHeaders headers) {
        String site = headers.get(SEC_FETCH_SITE);
        if (site != null && !site.equals("same-origin") && !site.equals("none")) {
            return true;
        }
        String origin = headers.get(HttpHeaderNames.ORIGIN);
        if (origin != null) {
            int scheme = origin.indexOf("://");
            // "null" (an opaque origin: a sandboxed frame, a file) or anything without a scheme is no page of ours.
            if (scheme < 0 || !loopbackName(hostOf(origin.substring(scheme + 3)))) {
                return true;
            }
        }
        // Checked whether or not the browser sent Origin or Sec-Fetch-Site: browsers before those
        // headers send neither on a same-origin GET, and a rebinding page's GET is same-origin.
        // An address typed as such is never a rebinding (the origin is the address itself).
        String host = headers.get(HttpHeaderNames.HOST);
        return host != null && !host.isBlank() && !loopbackName(hostOf(host)) && !ipLiteral(hostOf(host));
    }

    private static boolean ipLiteral(String host) {
        return host.startsWith("[") || host.matches("\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}");
    }

    /** The host of an authority ({@code host}, {@code host:port}, {@code [::1]:port}). */
    private static String hostOf(String authority) {
        String a = authority.strip().toLowerCase(java.util.Locale.ROOT);
        if (a.startsWith("[")) {
            int end = a.indexOf(']');
            return end < 0 ? a : a.substring(0, end + 1);
        }
        int colon = a.indexOf(':');
        int slash = a.indexOf('/');
        int end = colon >= 0 ? colon : slash >= 0 ? slash : a.length();
        return a.substring(0, end);
    }

    private static boolean loopbackName(String host) {
        return host.equals("localhost") || host.endsWith(".localhost") || host.equals("[::1]")
                || host.matches("127\\.\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}");
    }

    private static boolean relayedByAProxy(RequestHeaders headers) {
        return headers.contains(X_FORWARDED_FOR) || headers.contains(X_REAL_IP) || headers.contains(FORWARDED);
    }

    private static String bearer(RequestHeaders headers) {
        String auth = headers.get(HttpHeaderNames.AUTHORIZATION);
        if (auth == null) {
            return null;
        }
        auth = auth.strip();
        if (auth.regionMatches(true, 0, "Bearer ", 0, 7)) {
            String v = auth.substring(7).strip();
            return v.isEmpty() ? null : v;
        }
        return null;
    }
}
