package dev.ecomlambda.speed;

/**
 * sin, cos and asin rounded to the nearest double, i.e. what glibc's libm (Python's math module on this
 * platform) returns for the haversine distance of ml.features. Java's Math / StrictMath are allowed 1 ulp of
 * error and differ from glibc on about 1 argument in 400, which would break bit-for-bit parity of
 * cust_home_distance_km. The value is evaluated in double-double arithmetic (~32 digits) by its Taylor series
 * (arguments here are within [-pi, pi]) and rounded once.
 */
final class RoundedMath {
  private RoundedMath() {}

  // a double-double is (hi, lo) with |lo| <= ulp(hi) / 2; hi alone is then hi + lo rounded to nearest
  private static double lo;

  private static double twoSum(double a, double b) {
    double s = a + b;
    double bb = s - a;
    lo = (a - (s - bb)) + (b - bb);
    return s;
  }

  /** (ah, al) * (bh, bl); result hi returned, lo in {@code out[1]}. */
  private static void mul(double ah, double al, double bh, double bl, double[] out) {
    double p = ah * bh;
    double e = Math.fma(ah, bh, -p) + (ah * bl + al * bh);
    double s = p + e;
    out[0] = s;
    out[1] = e - (s - p);
  }

  private static void divInt(double ah, double al, double d, double[] out) {
    double q1 = ah / d;
    double r = Math.fma(-q1, d, ah) + al; // ah + al - q1 * d, exactly enough
    double q2 = r / d;
    double s = q1 + q2;
    out[0] = s;
    out[1] = q2 - (s - q1);
  }

  private static void add(double ah, double al, double bh, double bl, double[] out) {
    double s = twoSum(ah, bh);
    double e = lo + al + bl;
    double h = s + e;
    out[0] = h;
    out[1] = e - (h - s);
  }

  /** Taylor series of sin (odd = true) or cos around 0 for the double-double x. */
  private static void series(double xh, double xl, boolean odd, double[] out) {
    double[] x2 = new double[2];
    mul(xh, xl, xh, xl, x2);
    double[] term = odd ? new double[] {xh, xl} : new double[] {1.0, 0.0};
    double[] sum = term.clone();
    for (int k = 1; k < 40; k++) {
      mul(term[0], term[1], x2[0], x2[1], term);
      double d = odd ? (2.0 * k) * (2.0 * k + 1) : (2.0 * k - 1) * (2.0 * k);
      divInt(-term[0], -term[1], d, term);
      add(sum[0], sum[1], term[0], term[1], sum);
      if (Math.abs(term[0]) < 1e-36 * Math.abs(sum[0])) {
        break;
      }
    }
    out[0] = sum[0];
    out[1] = sum[1];
  }

  static double sin(double x) {
    double[] r = new double[2];
    series(x, 0.0, true, r);
    return r[0] + r[1];
  }

  static double cos(double x) {
    double[] r = new double[2];
    series(x, 0.0, false, r);
    return r[0] + r[1];
  }

  private static final double LN2_HI = 0.6931471805599453;
  private static final double LN2_LO = 2.3190468138462996e-17;

  /**
   * 2^x rounded to nearest, as glibc's pow(2, x) that numpy's `2 ** depths` (IsolationForest's score)
   * calls: the stacked classifier splits on that score, so 1 ulp can flip a split.
   */
  static double exp2(double x) {
    if (Double.isNaN(x) || Double.isInfinite(x) || Math.abs(x) > 1000) {
      return Math.pow(2.0, x);
    }
    double k = Math.rint(x);
    double f = x - k; // exact, |f| <= 1/2
    double[] y = new double[2];
    mul(f, 0.0, LN2_HI, LN2_LO, y);
    double[] term = {1.0, 0.0};
    double[] sum = {1.0, 0.0};
    for (int n = 1; n < 40; n++) {
      mul(term[0], term[1], y[0], y[1], term);
      divInt(term[0], term[1], n, term);
      add(sum[0], sum[1], term[0], term[1], sum);
      if (Math.abs(term[0]) < 1e-36) {
        break;
      }
    }
    // scaling by 2^k is exact (no subnormals for the scores' range); round the double-double once
    return Math.scalb(sum[0] + sum[1], (int) k);
  }

  /** sin(y + d) - q for the double y, a small double offset d, and the double q (double-double sign). */
  private static double sinMinus(double y, double d, double q) {
    double[] r = new double[2];
    double h = twoSum(y, d);
    series(h, lo, true, r);
    return (r[0] - q) + r[1];
  }

  /** asin(q), q in [0, 1]: Java's value moved to the neighbour whose half-ulp interval holds the root. */
  static double asin(double q) {
    double y = Math.asin(q);
    if (y == 0.0 || Double.isNaN(y) || q >= 1.0) {
      return y;
    }
    for (int step = 0; step < 4; step++) {
      double up = Math.nextUp(y);
      double down = Math.nextDown(y);
      if (sinMinus(y, (down - y) / 2, q) > 0) {
        y = down;
      } else if (sinMinus(y, (up - y) / 2, q) < 0) {
        y = up;
      } else {
        return y;
      }
    }
    return y;
  }
}
