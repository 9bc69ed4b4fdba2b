package io.megallm.proxy.server.clients;

import io.megallm.proxy.http.ErrorResponses;
import io.megallm.proxy.http.Exchange;
import io.megallm.proxy.relay.RequestGate;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpResponseStatus;

import java.util.function.LongSupplier;

/**
 * Enforces a client's limits (contract §13) in two steps, both before any pool key is touched:
 * on the request head, the limits that need no body (requests per minute, tokens per minute and
 * per day); once the JSON body is read, the model allow-list, the token limits again as the
 * request takes its place in flight, and concurrent streams. A refusal is 429 (403 for a model)
 * in the error shape with {@code Retry-After}; nothing is sent upstream. The place is taken this
 * late because only an exchange that reaches the relay is sure to be seen ending: a client that
 * goes away while its body is read is never reported, and would leak it.
 */
public final class ClientGate implements RequestGate {

    private final LongSupplier epochSeconds;

    public ClientGate(LongSupplier epochSeconds) {
        this.epochSeconds = epochSeconds;
    }

    /** The head step; true to go on, else the refusal has been sent. */
    public boolean admitHead(Exchange exchange) {
        if (!(exchange.attachment() instanceof Client client)) {
            return true;
        }
        return refuse(exchange, client.admitRequest(epochSeconds.getAsLong()));
    }

    @Override
    public boolean admit(Exchange exchange, String model, boolean stream, boolean uncountedStream) {
        if (!(exchange.attachment() instanceof Client client)) {
            return true;
        }
        boolean ok = refuse(exchange, client.admitBody(epochSeconds.getAsLong(), model, stream, uncountedStream));
        if (ok) {
            exchange.attach(new Hold(client, stream));
        }
        return ok;
    }

    /** The client of an exchange, whether it was admitted whole or not. */
    public static Client clientOf(Exchange exchange) {
        Object a = exchange.attachment();
        if (a instanceof Client c) {
            return c;
        }
        return a instanceof Hold h ? h.client : null;
    }

    /**
     * Gives back what an ended exchange held (its place in flight, its stream slot), if it was
     * admitted whole; once, however often it is called.
     */
    public static void release(Exchange exchange) {
        if (exchange.attachment() instanceof Hold h && !h.released) {
            h.released = true;
            h.client.ended(h.stream);
        }
    }

    private static boolean refuse(Exchange exchange, Client.Refusal r) {
        if (r == null) {
            return true;
        }
        FullHttpResponse response = ErrorResponses.error(exchange.alloc(), HttpResponseStatus.valueOf(r.status()),
                switch (r.status()) {
                    case 400 -> ErrorResponses.INVALID_REQUEST;
                    case 403 -> ErrorResponses.PERMISSION;
                    default -> "rate_limit_exceeded";
                }, r.code(), r.message());
        if (r.retryAfterSeconds() > 0) {
            ErrorResponses.retryAfter(response, r.retryAfterSeconds());
        }
        exchange.respond(response);
        return false;
    }

    /** A request admitted whole: its place in flight (and stream slot) comes back when the exchange ends. */
    private static final class Hold {
        final Client client;
        final boolean stream;
        /** Touched on the exchange's event loop only. */
        boolean released;

        Hold(Client client, boolean stream) {
            this.client = client;
            this.stream = stream;
        }
    }
}
