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
 * per day); once the JSON body is read, the model allow-list and concurrent streams. A refusal is
 * 429 (403 for a model) in the error shape with {@code Retry-After}; nothing is sent upstream.
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
    public boolean admit(Exchange exchange, String model, boolean stream) {
        if (!(exchange.attachment() instanceof Client client)) {
            return true;
        }
        boolean ok = refuse(exchange, client.admitBody(epochSeconds.getAsLong(), model, stream));
        if (ok && stream) {
            exchange.attach(new StreamHold(client));
        }
        return ok;
    }

    /** The client of an exchange, whether it holds a stream slot or not. */
    public static Client clientOf(Exchange exchange) {
        Object a = exchange.attachment();
        if (a instanceof Client c) {
            return c;
        }
        return a instanceof StreamHold h ? h.client : null;
    }

    /** Gives back the stream slot an ended exchange held, if it held one. */
    public static void release(Exchange exchange) {
        if (exchange.attachment() instanceof StreamHold h) {
            h.client.streamEnded();
        }
    }

    private static boolean refuse(Exchange exchange, Client.Refusal r) {
        if (r == null) {
            return true;
        }
        FullHttpResponse response = ErrorResponses.error(exchange.alloc(), HttpResponseStatus.valueOf(r.status()),
                r.status() == 403 ? ErrorResponses.PERMISSION : "rate_limit_exceeded", r.code(), r.message());
        if (r.retryAfterSeconds() > 0) {
            response.headers().set(HttpHeaderNames.RETRY_AFTER, r.retryAfterSeconds());
        }
        exchange.respond(response);
        return false;
    }

    /** An admitted stream of a client: its slot comes back when the exchange ends. */
    private record StreamHold(Client client) {
    }
}
