package io.megallm.proxy.server.metrics;

/** Writes the Prometheus text exposition format (version 0.0.4). */
final class PrometheusText {

    static final String CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

    private final ScrapeText scrape;
    private final StringBuilder out;

    PrometheusText(ScrapeText scrape) {
        this.scrape = scrape;
        this.out = scrape.text();
    }

    PrometheusText family(String name, String type, String help) {
        out.append("# HELP ").append(name).append(' ').append(help.replace("\\", "\\\\").replace("\n", "\\n"))
                .append('\n').append("# TYPE ").append(name).append(' ').append(type).append('\n');
        return this;
    }

    PrometheusText sample(String name, double value, String... labels) {
        out.append(name);
        if (labels.length > 0) {
            out.append('{');
            for (int i = 0; i + 1 < labels.length; i += 2) {
                if (i > 0) {
                    out.append(',');
                }
                out.append(labels[i]).append("=\"").append(escape(labels[i + 1])).append('"');
            }
            out.append('}');
        }
        out.append(' ').append(format(value)).append('\n');
        scrape.spill();
        return this;
    }

    PrometheusText histogram(String name, String help, Histogram h) {
        family(name, "histogram", help);
        long[] cumulative = h.cumulative();
        for (int i = 0; i < Histogram.BOUNDS.length; i++) {
            sample(name + "_bucket", cumulative[i], "le", format(Histogram.BOUNDS[i]));
        }
        long count = h.count();
        sample(name + "_bucket", count, "le", "+Inf");
        sample(name + "_sum", h.sumSeconds());
        sample(name + "_count", count);
        return this;
    }

    static String escape(String v) {
        return v.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n");
    }

    static String format(double v) {
        if (v == Math.rint(v) && !Double.isInfinite(v) && Math.abs(v) < 1e15) {
            return Long.toString((long) v);
        }
        return Double.toString(v);
    }

}
