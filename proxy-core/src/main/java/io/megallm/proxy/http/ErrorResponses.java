package io.megallm.proxy.http;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.util.AsciiString;

import java.nio.charset.StandardCharsets;

/** Every error the proxy itself produces, in the OpenAI shape {@code {"error":{message,type,code}}}. */
public final class ErrorResponses {

    public static final String INVALID_REQUEST = "invalid_request_error";
    public static final String AUTHENTICATION = "authentication_error";
    public static final String PERMISSION = "permission_error";
    public static final String NOT_FOUND = "not_found_error";
    public static final String SERVER = "server_error";
    public static final String UNAVAILABLE = "service_unavailable_error";
    public static final String RATE_LIMIT = "rate_limit_exceeded";

    private ErrorResponses() {
    }

    public static FullHttpResponse error(ByteBufAllocator alloc, HttpResponseStatus status,
                                         String type, String code, String message) {
        String body = "{\"error\":{\"message\":" + JsonText.quote(message)
                + ",\"type\":" + JsonText.quote(type)
                + ",\"code\":" + JsonText.quote(code) + "}}";
        FullHttpResponse response = json(alloc, status, body);
        if (status.code() == 401) {
            // RFC 9110 §15.5.2: a 401 names the scheme that would work (clients and tools read it).
            response.headers().set(HttpHeaderNames.WWW_AUTHENTICATE, "Bearer");
        }
        return response;
    }

    /** Past this wait a client library should give the error to its caller, not sleep on it. */
    static final long LONGEST_RETRY_WAIT_SECONDS = 60;
    private static final AsciiString X_SHOULD_RETRY = AsciiString.cached("x-should-retry");

    /**
     * Sets {@code Retry-After} on an answer of ours. A wait past a minute (a {@code daily_tokens}
     * limit until midnight, every key resting for an hour) also gets {@code x-should-retry: false}:
     * the OpenAI SDKs read that header, and without it they sleep out any Retry-After before
     * their retry, leaving the application's call hanging for hours with no error.
     */
    public static void retryAfter(FullHttpResponse response, long seconds) {
        response.headers().set(HttpHeaderNames.RETRY_AFTER, seconds);
        if (seconds > LONGEST_RETRY_WAIT_SECONDS) {
            noRetry(response);
        }
    }

    /** Tells the OpenAI SDKs not to retry an answer of ours ({@code x-should-retry: false}, which they obey). */
    public static void noRetry(FullHttpResponse response) {
        response.headers().set(X_SHOULD_RETRY, "false");
    }

    public static FullHttpResponse json(ByteBufAllocator alloc, HttpResponseStatus status, String body) {
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        ByteBuf buf = alloc.buffer(bytes.length).writeBytes(bytes);
        FullHttpResponse response = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, status, buf);
        response.headers()
                .set(HttpHeaderNames.CONTENT_TYPE, HttpHeaderValues.APPLICATION_JSON)
                .setInt(HttpHeaderNames.CONTENT_LENGTH, bytes.length);
        return response;
    }
}
