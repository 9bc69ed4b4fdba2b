package io.megallm.proxy.bench.harness;

import io.megallm.proxy.bench.harness.Results.NonStreamRow;
import io.megallm.proxy.bench.harness.Results.OpenLoopRow;
import io.megallm.proxy.bench.harness.Results.StreamRow;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.CategoryChartBuilder;
import org.knowm.xchart.CategorySeries;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.style.Styler;

import javax.imageio.ImageIO;
import java.awt.Color;
import java.awt.Graphics2D;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/** PNG charts of a run, drawn with XChart (headless). */
public final class Charts {

    public static final String THROUGHPUT = "throughput-vs-connections.png";
    public static final String LATENCY = "latency-percentiles.png";
    public static final String STREAMS = "stream-latency.png";
    public static final String THROUGHPUT_WRK = "throughput-vs-connections-wrk.png";
    public static final String LATENCY_WRK = "latency-percentiles-wrk.png";

    private static final Map<String, Color> COLORS = Map.of(
            Peers.DIRECT, new Color(120, 120, 120),
            Peers.HAPROXY, new Color(76, 153, 76),
            Peers.NGINX, new Color(52, 101, 164),
            Peers.PROXY, new Color(230, 126, 34),
            Peers.PROXY_IMAGE, new Color(192, 57, 43));

    private static final double[] PERCENTILES = {50, 90, 99, 99.9};
    private static final List<String> P_LABELS = List.of("p50", "p90", "p99", "p99.9");

    private Charts() {
    }

    /** Draws the charts the results have data for; returns their file names. */
    public static List<String> draw(Results r, Path dir) {
        System.setProperty("java.awt.headless", "true");
        List<String> files = new ArrayList<>();
        if (!r.nonStream().isEmpty()) {
            save(throughput(r.nonStream(), "own client"), dir.resolve(THROUGHPUT));
            files.add(THROUGHPUT);
        }
        if (!r.wrk().isEmpty()) {
            save(throughput(r.wrk(), "wrk"), dir.resolve(THROUGHPUT_WRK));
            files.add(THROUGHPUT_WRK);
            List<BufferedImage> wrkPanels = new ArrayList<>();
            TreeSet<Integer> wrkLevels = new TreeSet<>();
            r.wrk().forEach(x -> wrkLevels.add(x.connections()));
            for (int c : wrkLevels) {
                CategoryChart chart = percentileChart("wrk, closed loop, " + c + " connections: latency", "ms");
                for (NonStreamRow x : r.wrk()) {
                    if (x.connections() == c) {
                        addSeries(chart, x.peer(), P_LABELS, values(x.latency()));
                    }
                }
                wrkPanels.add(BitmapEncoder.getBufferedImage(chart));
            }
            saveGrid(wrkPanels, dir.resolve(LATENCY_WRK));
            files.add(LATENCY_WRK);
        }
        List<BufferedImage> panels = new ArrayList<>();
        TreeSet<Integer> levels = new TreeSet<>();
        r.nonStream().forEach(x -> levels.add(x.connections()));
        for (int c : levels) {
            List<NonStreamRow> rows = r.nonStream().stream().filter(x -> x.connections() == c).toList();
            CategoryChart chart = percentileChart("Closed loop, " + c + " connections: latency", "ms");
            for (NonStreamRow x : rows) {
                addSeries(chart, x.peer(), P_LABELS, values(x.latency()));
            }
            panels.add(BitmapEncoder.getBufferedImage(chart));
        }
        if (!r.openLoop().isEmpty()) {
            OpenLoopRow first = r.openLoop().get(0);
            CategoryChart chart = percentileChart(String.format(java.util.Locale.ROOT,
                    "Open loop, %.0f req/s: latency", first.targetRps()), "ms");
            for (OpenLoopRow x : r.openLoop()) {
                addSeries(chart, x.peer(), P_LABELS, values(x.latency()));
            }
            panels.add(BitmapEncoder.getBufferedImage(chart));
        }
        if (!panels.isEmpty()) {
            saveGrid(panels, dir.resolve(LATENCY));
            files.add(LATENCY);
        }
        List<BufferedImage> streamPanels = new ArrayList<>();
        TreeSet<Integer> counts = new TreeSet<>();
        r.streaming().forEach(x -> counts.add(x.streams()));
        for (int c : counts) {
            CategoryChart chart = percentileChart(c + " SSE streams: per-event latency and TTFB", "ms");
            List<String> labels = List.of("event p50", "event p90", "event p99", "event p99.9", "TTFB p50", "TTFB p99");
            for (StreamRow x : r.streaming()) {
                if (x.streams() != c) {
                    continue;
                }
                List<Double> v = new ArrayList<>(values(x.perEvent()));
                v.add(x.ttfb().p50Ms());
                v.add(x.ttfb().p99Ms());
                addSeries(chart, x.peer(), labels, v);
            }
            streamPanels.add(BitmapEncoder.getBufferedImage(chart));
        }
        if (!streamPanels.isEmpty()) {
            saveGrid(streamPanels, dir.resolve(STREAMS));
            files.add(STREAMS);
        }
        return files;
    }

    /** One panel of a time-series chart: named lines over the same x values. */
    public record Line(String title, String xTitle, String yTitle, double[] x, Map<String, double[]> series) {
    }

    /** Line charts over time (the chaos run's RSS, descriptors and connections), stacked in one PNG. */
    public static void lines(List<Line> panels, Path file) {
        System.setProperty("java.awt.headless", "true");
        List<BufferedImage> images = new ArrayList<>();
        for (Line p : panels) {
            XYChart chart = new XYChartBuilder().width(900).height(380).title(p.title()).xAxisTitle(p.xTitle())
                    .yAxisTitle(p.yTitle()).build();
            chart.getStyler().setLegendPosition(Styler.LegendPosition.OutsideS);
            chart.getStyler().setLegendLayout(Styler.LegendLayout.Horizontal);
            chart.getStyler().setChartBackgroundColor(Color.WHITE);
            chart.getStyler().setPlotBackgroundColor(Color.WHITE);
            chart.getStyler().setPlotGridLinesColor(new Color(220, 220, 220));
            chart.getStyler().setMarkerSize(3);
            for (Map.Entry<String, double[]> e : p.series().entrySet()) {
                double[] y = e.getValue().clone();
                for (int i = 0; i < y.length; i++) {
                    if (Double.isNaN(y[i]) || Double.isInfinite(y[i])) {
                        y[i] = 0;
                    }
                }
                XYSeries s = chart.addSeries(e.getKey(), p.x(), y);
                s.setXYSeriesRenderStyle(XYSeries.XYSeriesRenderStyle.Line);
            }
            images.add(BitmapEncoder.getBufferedImage(chart));
        }
        BufferedImage grid = new BufferedImage(images.get(0).getWidth(),
                images.stream().mapToInt(BufferedImage::getHeight).sum(), BufferedImage.TYPE_INT_RGB);
        Graphics2D g = grid.createGraphics();
        int y = 0;
        for (BufferedImage i : images) {
            g.drawImage(i, 0, y, null);
            y += i.getHeight();
        }
        g.dispose();
        try {
            ImageIO.write(grid, "png", file.toFile());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static CategoryChart throughput(List<NonStreamRow> rows, String driver) {
        CategoryChart chart = new CategoryChartBuilder().width(900).height(520)
                .title("Non-streaming throughput vs connections (closed loop, " + driver + ", median of trials)")
                .xAxisTitle("keep-alive connections").yAxisTitle("requests per second").build();
        style(chart);
        chart.getStyler().setLabelsVisible(true);
        chart.getStyler().setDecimalPattern("#,###");
        Set<String> peers = new LinkedHashSet<>();
        rows.forEach(x -> peers.add(x.peer()));
        TreeSet<Integer> levels = new TreeSet<>();
        rows.forEach(x -> levels.add(x.connections()));
        List<String> xs = levels.stream().map(String::valueOf).toList();
        for (String peer : peers) {
            List<Double> ys = new ArrayList<>();
            for (int c : levels) {
                ys.add(rows.stream().filter(x -> x.peer().equals(peer) && x.connections() == c)
                        .map(NonStreamRow::throughputRps).findFirst().orElse(0.0));
            }
            addSeries(chart, peer, xs, ys);
        }
        return chart;
    }

    static CategoryChart percentileChart(String title, String unit) {
        CategoryChart chart = new CategoryChartBuilder().width(800).height(460).title(title)
                .xAxisTitle("percentile").yAxisTitle(unit).build();
        style(chart);
        chart.getStyler().setDecimalPattern("#,##0.##");
        return chart;
    }

    private static void style(CategoryChart chart) {
        chart.getStyler().setLegendPosition(Styler.LegendPosition.OutsideS);
        chart.getStyler().setLegendLayout(Styler.LegendLayout.Horizontal);
        chart.getStyler().setChartBackgroundColor(Color.WHITE);
        chart.getStyler().setPlotBackgroundColor(Color.WHITE);
        chart.getStyler().setPlotGridLinesColor(new Color(220, 220, 220));
        chart.getStyler().setAvailableSpaceFill(0.8);
        chart.getStyler().setOverlapped(false);
    }

    private static void addSeries(CategoryChart chart, String peer, List<String> xs, List<Double> ys) {
        List<Double> clean = ys.stream().map(v -> Double.isNaN(v) || Double.isInfinite(v) ? 0.0 : v).toList();
        CategorySeries s = chart.addSeries(peer, xs, clean);
        Color c = COLORS.get(peer);
        if (c != null) {
            s.setFillColor(c);
            s.setLineColor(c);
        }
    }

    private static List<Double> values(LatencySummary l) {
        List<Double> v = new ArrayList<>();
        for (double p : PERCENTILES) {
            v.add(l.at(p));
        }
        return v;
    }

    private static void save(CategoryChart chart, Path file) {
        try {
            ImageIO.write(BitmapEncoder.getBufferedImage(chart), "png", file.toFile());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static void saveGrid(List<BufferedImage> panels, Path file) {
        int cols = panels.size() == 1 ? 1 : 2;
        int rows = (panels.size() + cols - 1) / cols;
        int w = panels.get(0).getWidth();
        int h = panels.get(0).getHeight();
        BufferedImage grid = new BufferedImage(w * cols, h * rows, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = grid.createGraphics();
        g.setColor(Color.WHITE);
        g.fillRect(0, 0, grid.getWidth(), grid.getHeight());
        for (int i = 0; i < panels.size(); i++) {
            g.drawImage(panels.get(i), (i % cols) * w, (i / cols) * h, null);
        }
        g.dispose();
        try {
            ImageIO.write(grid, "png", file.toFile());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** One panel of {@link #timeSeries}: named lines over a shared x axis. */
    public record LinePanel(String title, String xTitle, String yTitle, List<Double> xs, Map<String, List<Double>> lines) {
    }

    /** Line charts side by side in one PNG (the keys bench's goodput per second). */
    public static void timeSeries(List<LinePanel> panels, Path file) {
        System.setProperty("java.awt.headless", "true");
        List<BufferedImage> images = new ArrayList<>();
        for (LinePanel p : panels) {
            XYChart chart = new XYChartBuilder().width(800).height(460).title(p.title()).xAxisTitle(p.xTitle())
                    .yAxisTitle(p.yTitle()).build();
            chart.getStyler().setLegendPosition(Styler.LegendPosition.OutsideS);
            chart.getStyler().setLegendLayout(Styler.LegendLayout.Horizontal);
            chart.getStyler().setChartBackgroundColor(Color.WHITE);
            chart.getStyler().setPlotBackgroundColor(Color.WHITE);
            chart.getStyler().setPlotGridLinesColor(new Color(220, 220, 220));
            chart.getStyler().setMarkerSize(0);
            for (Map.Entry<String, List<Double>> e : p.lines().entrySet()) {
                XYSeries s = chart.addSeries(e.getKey(), p.xs(), e.getValue().stream()
                        .map(v -> Double.isNaN(v) || Double.isInfinite(v) ? 0.0 : v).toList());
                s.setXYSeriesRenderStyle(XYSeries.XYSeriesRenderStyle.Line);
            }
            images.add(BitmapEncoder.getBufferedImage(chart));
        }
        saveGrid(images, file);
    }
}
