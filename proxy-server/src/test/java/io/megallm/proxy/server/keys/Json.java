package io.megallm.proxy.server.keys;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A small JSON reader for test assertions, on jackson-core's streaming parser: objects become
 * {@link LinkedHashMap}s, arrays {@link List}s, integers {@link Long}s, other numbers
 * {@link Double}s. Rejects trailing content, so a body that is not exactly one JSON value fails.
 */
public final class Json {

    private static final JsonFactory FACTORY = new JsonFactory();

    private Json() {
    }

    public static Object parse(String text) {
        try (JsonParser p = FACTORY.createParser(text)) {
            JsonToken first = p.nextToken();
            if (first == null) {
                throw new AssertionError("not JSON (empty): " + text);
            }
            Object value = read(p);
            if (p.nextToken() != null) {
                throw new AssertionError("trailing content after the JSON value: " + text);
            }
            return value;
        } catch (IOException e) {
            throw new AssertionError("not JSON: " + text + " (" + e.getMessage() + ")", e);
        }
    }

    @SuppressWarnings("unchecked")
    public static Map<String, Object> object(String text) {
        Object v = parse(text);
        if (!(v instanceof Map)) {
            throw new AssertionError("not a JSON object: " + text);
        }
        return (Map<String, Object>) v;
    }

    @SuppressWarnings("unchecked")
    public static Map<String, Object> object(Object value) {
        if (!(value instanceof Map)) {
            throw new AssertionError("not a JSON object: " + value);
        }
        return (Map<String, Object>) value;
    }

    private static Object read(JsonParser p) throws IOException {
        JsonToken t = p.currentToken();
        switch (t) {
            case START_OBJECT: {
                Map<String, Object> m = new LinkedHashMap<>();
                while (p.nextToken() == JsonToken.FIELD_NAME) {
                    String name = p.currentName();
                    p.nextToken();
                    if (m.containsKey(name)) {
                        throw new AssertionError("duplicate JSON member " + name);
                    }
                    m.put(name, read(p));
                }
                return m;
            }
            case START_ARRAY: {
                List<Object> l = new ArrayList<>();
                while (p.nextToken() != JsonToken.END_ARRAY) {
                    l.add(read(p));
                }
                return l;
            }
            case VALUE_STRING:
                return p.getText();
            case VALUE_NUMBER_INT:
                return p.getLongValue();
            case VALUE_NUMBER_FLOAT:
                return p.getDoubleValue();
            case VALUE_TRUE:
                return Boolean.TRUE;
            case VALUE_FALSE:
                return Boolean.FALSE;
            case VALUE_NULL:
                return null;
            default:
                throw new UncheckedIOException(new IOException("unexpected token " + t));
        }
    }

    /** Asserts the OpenAI error shape: exactly {"error":{"message","type","code"}}, all strings. */
    public static Map<String, Object> assertErrorShape(String body) {
        Map<String, Object> outer = object(body);
        if (!outer.keySet().equals(java.util.Set.of("error"))) {
            throw new AssertionError("error body must have exactly the member \"error\": " + body);
        }
        Map<String, Object> error = object(outer.get("error"));
        if (!error.keySet().equals(java.util.Set.of("message", "type", "code"))) {
            throw new AssertionError("error must have exactly message, type, code: " + body);
        }
        for (Object v : error.values()) {
            if (!(v instanceof String s) || s.isEmpty()) {
                throw new AssertionError("error members must be non-empty strings: " + body);
            }
        }
        return error;
    }
}
