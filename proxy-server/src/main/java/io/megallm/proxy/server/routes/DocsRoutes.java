package io.megallm.proxy.server.routes;

import io.megallm.proxy.http.ErrorResponses;
import io.megallm.proxy.http.Exchange;
import io.megallm.proxy.server.Version;
import io.netty.buffer.Unpooled;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.util.AsciiString;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.Map;
import java.util.Properties;

/**
 * {@code GET /openapi.json} (the hand-written OpenAPI document in {@code docs/openapi.json}) and
 * {@code GET /docs} (Swagger UI, its files served from the {@code org.webjars:swagger-ui} jar
 * under {@code /docs/…}: no CDN, works offline). Both are public.
 *
 * <p>The files are read from the class path once, on the first docs request, and kept in memory
 * (about 2.2 MB, shared by every router in the JVM); a proxy that never serves the docs never
 * reads them. Every answer carries a strong {@code ETag}; {@code If-None-Match} gets 304.
 */
final class DocsRoutes {

    static final String OPENAPI = "/openapi.json";
    static final String DOCS = "/docs";
    private static final String ALLOW = "GET, HEAD";
    private static final AsciiString X_CONTENT_TYPE_OPTIONS = AsciiString.cached("x-content-type-options");

    private static final String WEBJAR_PROPERTIES = "/META-INF/maven/org.webjars/swagger-ui/pom.properties";
    private static final String WEBJAR_ROOT = "/META-INF/resources/webjars/swagger-ui/";
    /** The webjar's files the page uses; nothing else of the webjar is reachable. */
    private static final String[] WEBJAR_FILES = {
            "swagger-ui.css", "index.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js",
            "favicon-16x16.png", "favicon-32x32.png",
    };
    /** The page and the OpenAPI document change with the proxy: revalidate each time (cheap, ETag). */
    private static final String CACHE_REVALIDATE = "no-cache";
    /** Swagger UI's files are referenced with {@code ?v=<versions>}, so a day's caching is safe. */
    private static final String CACHE_ASSET = "public, max-age=86400";
    /**
     * The page may load nothing but this proxy's own files (Swagger UI sets inline styles and uses
     * data: images), so a browser proves the page works offline, and nothing can be injected.
     */
    static final String PAGE_CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            + "img-src 'self' data:; connect-src 'self'; font-src 'self' data:; object-src 'none'; "
            + "base-uri 'none'; form-action 'self'; frame-ancestors 'self'";

    private static final Object LOCK = new Object();
    private static volatile Map<String, Asset> assets;

    /** Answers the request and returns true when {@code path} is a docs path; false otherwise. */
    boolean handle(Exchange exchange, String path) {
        String name;
        if (path.equals(OPENAPI)) {
            name = OPENAPI;
        } else if (path.equals(DOCS) || path.equals("/docs/") || path.equals("/docs/index.html")) {
            name = DOCS;
        } else if (path.startsWith("/docs/")) {
            name = path;
        } else {
            return false;
        }
        Asset asset = assets().get(name);
        if (asset == null) {
            exchange.respondError(HttpResponseStatus.NOT_FOUND, ErrorResponses.NOT_FOUND, "not_found",
                    "No docs file " + (path.length() > 100 ? path.substring(0, 100) + "…" : path) + ".");
            return true;
        }
        HttpMethod method = exchange.request().method();
        boolean head = method.equals(HttpMethod.HEAD);
        if (!head && !method.equals(HttpMethod.GET)) {
            FullHttpResponse response = ErrorResponses.error(exchange.alloc(), HttpResponseStatus.METHOD_NOT_ALLOWED,
                    ErrorResponses.INVALID_REQUEST, "method_not_allowed",
                    "Use GET or HEAD for " + path + ".");
            response.headers().set(HttpHeaderNames.ALLOW, ALLOW);
            exchange.respond(response);
            return true;
        }
        exchange.respond(asset.response(head, notModified(exchange, asset.etag)));
        return true;
    }

    private static boolean notModified(Exchange exchange, String etag) {
        String inm = exchange.request().headers().get(HttpHeaderNames.IF_NONE_MATCH);
        if (inm == null) {
            return false;
        }
        for (String tag : inm.split(",")) {
            String t = tag.strip();
            if (t.startsWith("W/")) {
                t = t.substring(2);
            }
            if (t.equals("*") || t.equals(etag)) {
                return true;
            }
        }
        return false;
    }

    static Map<String, Asset> assets() {
        Map<String, Asset> a = assets;
        if (a == null) {
            synchronized (LOCK) {
                a = assets;
                if (a == null) {
                    a = load();
                    assets = a;
                }
            }
        }
        return a;
    }

    /** The Swagger UI version of the webjar on the class path, from its Maven metadata. */
    static String swaggerUiVersion() {
        try (InputStream in = DocsRoutes.class.getResourceAsStream(WEBJAR_PROPERTIES)) {
            if (in == null) {
                throw new IllegalStateException("Swagger UI webjar not on the class path (" + WEBJAR_PROPERTIES + ")");
            }
            Properties p = new Properties();
            p.load(in);
            String v = p.getProperty("version");
            if (v == null || v.isBlank()) {
                throw new IllegalStateException("no version in " + WEBJAR_PROPERTIES);
            }
            return v.strip();
        } catch (IOException e) {
            throw new IllegalStateException("cannot read " + WEBJAR_PROPERTIES, e);
        }
    }

    private static Map<String, Asset> load() {
        String swaggerUi = swaggerUiVersion();
        // Changes whenever either the proxy or Swagger UI changes: the page's asset URLs carry it.
        String v = swaggerUi + "-" + Version.VALUE;
        Map<String, Asset> map = new HashMap<>();
        String openapi = new String(read("/docs/openapi.json"), StandardCharsets.UTF_8)
                .replace("${project.version}", Version.VALUE);
        map.put(OPENAPI, new Asset(openapi.getBytes(StandardCharsets.UTF_8), "application/json", CACHE_REVALIDATE));
        String page = new String(read("/docs/index.html"), StandardCharsets.UTF_8).replace("{{v}}", v);
        map.put(DOCS, new Asset(page.getBytes(StandardCharsets.UTF_8), "text/html; charset=utf-8", CACHE_REVALIDATE,
                PAGE_CSP));
        map.put("/docs/swagger-initializer.js", new Asset(read("/docs/swagger-initializer.js"),
                contentType("swagger-initializer.js"), CACHE_ASSET));
        for (String file : WEBJAR_FILES) {
            map.put("/docs/" + file, new Asset(read(WEBJAR_ROOT + swaggerUi + "/" + file), contentType(file),
                    CACHE_ASSET));
        }
        return Map.copyOf(map);
    }

    private static byte[] read(String resource) {
        try (InputStream in = DocsRoutes.class.getResourceAsStream(resource)) {
            if (in == null) {
                throw new IllegalStateException("docs resource missing from the jar: " + resource);
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new IllegalStateException("cannot read docs resource " + resource, e);
        }
    }

    static String contentType(String file) {
        if (file.endsWith(".js")) {
            return "text/javascript; charset=utf-8";
        }
        if (file.endsWith(".css")) {
            return "text/css; charset=utf-8";
        }
        if (file.endsWith(".png")) {
            return "image/png";
        }
        if (file.endsWith(".html")) {
            return "text/html; charset=utf-8";
        }
        if (file.endsWith(".json")) {
            return "application/json";
        }
        return "application/octet-stream";
    }

    /** One file, kept in memory; each answer wraps the same bytes (no copy). */
    static final class Asset {
        final byte[] bytes;
        final String contentType;
        final String cacheControl;
        final String etag;
        final String csp;

        Asset(byte[] bytes, String contentType, String cacheControl) {
            this(bytes, contentType, cacheControl, null);
        }

        Asset(byte[] bytes, String contentType, String cacheControl, String csp) {
            this.bytes = bytes;
            this.contentType = contentType;
            this.cacheControl = cacheControl;
            this.etag = etag(bytes);
            this.csp = csp;
        }

        FullHttpResponse response(boolean head, boolean notModified) {
            boolean body = !head && !notModified;
            FullHttpResponse response = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1,
                    notModified ? HttpResponseStatus.NOT_MODIFIED : HttpResponseStatus.OK,
                    body ? Unpooled.wrappedBuffer(bytes) : Unpooled.EMPTY_BUFFER);
            response.headers()
                    .set(HttpHeaderNames.CACHE_CONTROL, cacheControl)
                    .set(HttpHeaderNames.ETAG, etag)
                    .set(X_CONTENT_TYPE_OPTIONS, "nosniff");
            if (csp != null) {
                response.headers().set(HttpHeaderNames.CONTENT_SECURITY_POLICY, csp);
            }
            if (!notModified) {
                // A HEAD answer announces the length the GET body would have.
                response.headers()
                        .set(HttpHeaderNames.CONTENT_TYPE, contentType)
                        .setInt(HttpHeaderNames.CONTENT_LENGTH, bytes.length);
            }
            return response;
        }

        private static String etag(byte[] bytes) {
            try {
                byte[] digest = MessageDigest.getInstance("SHA-256").digest(bytes);
                return "\"" + HexFormat.of().formatHex(digest, 0, 12) + "\"";
            } catch (NoSuchAlgorithmException e) {
                throw new IllegalStateException(e);
            }
        }
    }
}
