package io.megallm.proxy.bench.chaos;

/** Least-squares line through samples, for "does it keep growing". */
final class Trend {

    private Trend() {
    }

    /** {slope, intercept} of y over x; {NaN, NaN} with fewer than two distinct x. */
    static double[] fit(double[] x, double[] y) {
        int n = Math.min(x.length, y.length);
        double mx = 0;
        double my = 0;
        for (int i = 0; i < n; i++) {
            mx += x[i];
            my += y[i];
        }
        mx /= n;
        my /= n;
        double sxy = 0;
        double sxx = 0;
        for (int i = 0; i < n; i++) {
            sxy += (x[i] - mx) * (y[i] - my);
            sxx += (x[i] - mx) * (x[i] - mx);
        }
        if (n < 2 || sxx == 0) {
            return new double[] {Double.NaN, Double.NaN};
        }
        double slope = sxy / sxx;
        return new double[] {slope, my - slope * mx};
    }
}
