package io.megallm.proxy.server.ops;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** A strict reader of the Prometheus text format 0.0.4: any line it does not understand fails the test. */
final class PrometheusParser {

    record Sample(String name, Map<String, String> labels, double value) {
    }

    private static final Pattern NAME = Pattern.compile("[a-zA-Z_:][a-zA-Z0-9_:]*");
    private static final Pattern LABEL = Pattern.compile("([a-zA-Z_][a-zA-Z0-9_]*)=\"((?:[^\"\\\\\\n]|\\\\[\\\\\"n])*)\"");

    final List<Sample> samples = new ArrayList<>();
    final Map<String, String> types = new HashMap<>();

    static PrometheusParser parse(String text) {
        PrometheusParser p = new PrometheusParser();
        int n = 0;
        for (String line : text.split("\n", -1)) {
            n++;
            if (line.isEmpty()) {
                continue;
            }
            if (line.startsWith("# HELP ")) {
                continue;
            }
            if (line.startsWith("# TYPE ")) {
                String[] parts = line.substring(7).split(" ");
                if (parts.length != 2 || !NAME.matcher(parts[0]).matches()
                        || !List.of("counter", "gauge", "histogram", "summary", "untyped").contains(parts[1])) {
                    throw new AssertionError("bad TYPE line " + n + ": " + line);
                }
                if (p.types.put(parts[0], parts[1]) != null) {
                    throw new AssertionError("TYPE given twice for " + parts[0]);
                }
                continue;
            }
            if (line.startsWith("#")) {
                throw new AssertionError("unknown comment line " + n + ": " + line);
            }
            p.samples.add(sample(line, n));
        }
        for (Sample s : p.samples) {
            String family = s.name().replaceAll("_(bucket|sum|count)$", "");
            if (!p.types.containsKey(s.name()) && !p.types.containsKey(family)) {
                throw new AssertionError("sample without a TYPE: " + s.name());
            }
        }
        return p;
    }

    private static Sample sample(String line, int n) {
        Matcher name = NAME.matcher(line);
        if (!name.lookingAt()) {
            throw new AssertionError("bad metric name at line " + n + ": " + line);
        }
        int i = name.end();
        Map<String, String> labels = new LinkedHashMap<>();
        if (i < line.length() && line.charAt(i) == '{') {
            int close = line.indexOf("} ", i);
            if (close < 0) {
                throw new AssertionError("unclosed labels at line " + n + ": " + line);
            }
            String body = line.substring(i + 1, close);
            Matcher m = LABEL.matcher(body);
            int pos = 0;
            while (pos < body.length()) {
                if (!m.find(pos) || m.start() != pos) {
                    throw new AssertionError("bad label at line " + n + ": " + line);
                }
                labels.put(m.group(1), m.group(2).replace("\\n", "\n").replace("\\\"", "\"").replace("\\\\", "\\"));
                pos = m.end();
                if (pos < body.length()) {
                    if (body.charAt(pos) != ',') {
                        throw new AssertionError("bad label separator at line " + n + ": " + line);
                    }
                    pos++;
                }
            }
            i = close + 1;
        }
        if (i >= line.length() || line.charAt(i) != ' ') {
            throw new AssertionError("no value at line " + n + ": " + line);
        }
        String value = line.substring(i + 1);
        double v;
        try {
            v = switch (value) {
                case "+Inf" -> Double.POSITIVE_INFINITY;
                case "-Inf" -> Double.NEGATIVE_INFINITY;
                case "NaN" -> Double.NaN;
                default -> Double.parseDouble(value);
            };
        } catch (NumberFormatException e) {
            throw new AssertionError("bad value at line " + n + ": " + line);
        }
        return new Sample(line.substring(0, name.end()), labels, v);
    }

    /** The value of the one sample with this name and (at least) these labels. */
    double value(String name, String... labels) {
        List<Sample> found = new ArrayList<>();
        outer:
        for (Sample s : samples) {
            if (!s.name().equals(name)) {
                continue;
            }
            for (int i = 0; i + 1 < labels.length; i += 2) {
                if (!labels[i + 1].equals(s.labels().get(labels[i]))) {
                    continue outer;
                }
            }
            found.add(s);
        }
        if (found.size() != 1) {
            throw new AssertionError("expected one sample " + name + " " + List.of(labels) + ", found " + found);
        }
        return found.get(0).value();
    }
}
