package dev.ecomlambda.speed;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.spark.sql.Row;

/**
 * What the batch layer tells the stream, as the JVM scorer reads it: every chargeback (for the chargeback
 * counts) and every customer's baseline (for the cold-start fill). The JVM twin of
 * ml.features.chargeback_context and ml.features.fill_from_baselines, which stay the reference
 * (tests/streaming/test_jvm_scoring_parity.py proves the scores equal). Built on the driver from the frames
 * the Python driver loads (ml.data.load_chargebacks / load_baselines), broadcast once per refresh.
 */
public final class BatchContext implements Serializable {
  private static final long serialVersionUID = 1L;
  static final long TERMINAL_CHARGEBACK_WINDOW_NS = 7L * 86400 * Walks.NS;
  static final long CUSTOMER_CHARGEBACK_WINDOW_NS = 30L * 86400 * Walks.NS;

  /** One customer's baseline (ml.features.BASELINE_COLUMNS). */
  static final class Baseline implements Serializable {
    private static final long serialVersionUID = 1L;
    double n;
    double median;
    double p95;
    Set<String> devices;
    Set<String> countries;
    double homeLat;
    double homeLon;
    long[] hours; // null unless 24 counts
    boolean hasLastSeen;
    long lastSeenNs;
  }

  // reported_at (ns) of the chargebacks of each terminal / customer, sorted
  private final Map<String, long[]> terminalReports;
  private final Map<String, long[]> customerReports;
  private final Map<String, Baseline> baselines;

  private BatchContext(
      Map<String, long[]> terminalReports,
      Map<String, long[]> customerReports,
      Map<String, Baseline> baselines) {
    this.terminalReports = terminalReports;
    this.customerReports = customerReports;
    this.baselines = baselines;
  }

  /**
   * From the collected rows of the two frames (either may be empty). Chargebacks: transaction_id,
   * customer_id, terminal_id, reported_at (one per transaction, as drop_duplicates keeps the first);
   * baselines: BASELINE_COLUMNS (a customer listed twice keeps the last row).
   */
  public static BatchContext of(List<Row> chargebacks, List<Row> baselineRows) {
    Map<String, List<Long>> term = new HashMap<>();
    Map<String, List<Long>> cust = new HashMap<>();
    Set<String> seen = new HashSet<>();
    for (Row r : chargebacks) {
      if (!seen.add(Rows.str(r.getAs("transaction_id")))) {
        continue;
      }
      Object reported = r.getAs("reported_at");
      if (reported == null) {
        continue; // NaT: pandas' searchsorted puts it nowhere near a real time
      }
      long ns = Rows.epochNs(reported);
      term.computeIfAbsent(Rows.str(r.getAs("terminal_id")), k -> new ArrayList<>()).add(ns);
      cust.computeIfAbsent(Rows.str(r.getAs("customer_id")), k -> new ArrayList<>()).add(ns);
    }
    Map<String, Baseline> base = new HashMap<>();
    for (Row r : baselineRows) {
      Baseline b = new Baseline();
      b.n = number(r.getAs("n_transactions"));
      b.median = number(r.getAs("median_amount"));
      b.p95 = number(r.getAs("p95_amount"));
      b.devices = strings(r.getAs("usual_device_ids"));
      b.countries = strings(r.getAs("usual_countries"));
      b.homeLat = number(r.getAs("home_lat"));
      b.homeLon = number(r.getAs("home_lon"));
      b.hours = hours(r.getAs("hour_counts"));
      Object last = r.getAs("last_seen_at");
      b.hasLastSeen = last != null;
      b.lastSeenNs = last == null ? 0L : Rows.epochNs(last);
      base.put(Rows.str(r.getAs("customer_id")), b);
    }
    return new BatchContext(sorted(term), sorted(cust), base);
  }

  private static Map<String, long[]> sorted(Map<String, List<Long>> lists) {
    Map<String, long[]> out = new HashMap<>(lists.size() * 2);
    for (Map.Entry<String, List<Long>> e : lists.entrySet()) {
      long[] a = e.getValue().stream().mapToLong(Long::longValue).toArray();
      Arrays.sort(a);
      out.put(e.getKey(), a);
    }
    return out;
  }

  private static double number(Object v) {
    return v == null ? Double.NaN : ((Number) v).doubleValue();
  }

  private static Set<String> strings(Object v) {
    Set<String> out = new HashSet<>();
    if (v instanceof scala.collection.Iterable<?> it) {
      it.foreach(
          x -> {
            if (x != null) {
              out.add(x.toString());
            }
            return null;
          });
    } else if (v instanceof List<?> list) {
      for (Object x : list) {
        if (x != null) {
          out.add(x.toString());
        }
      }
    }
    return out;
  }

  private static long[] hours(Object v) {
    List<Long> values = new ArrayList<>();
    if (v instanceof scala.collection.Iterable<?> it) {
      it.foreach(x -> values.add(((Number) x).longValue()));
    } else if (v instanceof List<?> list) {
      for (Object x : list) {
        values.add(((Number) x).longValue());
      }
    } else {
      return null;
    }
    return values.size() == 24 ? values.stream().mapToLong(Long::longValue).toArray() : null;
  }

  /** How many of {@code sorted} lie in [t - window, t): ml.features._count_reported_before. */
  static long countBefore(long[] sorted, long t, long window) {
    if (sorted == null) {
      return 0;
    }
    return lowerBound(sorted, t) - lowerBound(sorted, t - window);
  }

  private static int lowerBound(long[] a, long v) {
    int lo = 0;
    int hi = a.length;
    while (lo < hi) {
      int mid = (lo + hi) >>> 1;
      if (a[mid] < v) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo;
  }

  public int chargebackCount() {
    int n = 0;
    for (long[] a : terminalReports.values()) {
      n += a.length;
    }
    return n;
  }

  public int baselineCount() {
    return baselines.size();
  }

  /** ctx[20] = term_chargebacks_7d, ctx[21] = cust_chargebacks_30d (CONTEXT_COLUMNS positions). */
  void chargebacks(String terminal, String customer, long t, double[] ctx) {
    ctx[20] = countBefore(terminalReports.get(terminal), t, TERMINAL_CHARGEBACK_WINDOW_NS);
    ctx[21] = countBefore(customerReports.get(customer), t, CUSTOMER_CHARGEBACK_WINDOW_NS);
  }

  /**
   * ml.features.fill_from_baselines for one row: ctx[0..14] (CUSTOMER_CONTEXT_COLUMNS) replaced by the
   * baseline's habits when the walk knew fewer than MIN_HABIT_HISTORY earlier events, the baseline knows
   * more and its last event is strictly before the row. {@code device} as pandas' astype(str) gives it;
   * {@code country} "" = none; lat / lon NaN = not located. Same scalar arithmetic as the Python loop.
   */
  void fill(String customer, long t, String device, String country, double lat, double lon, double[] ctx) {
    Baseline b = baselines.get(customer);
    if (b == null) {
      return;
    }
    double prior = Double.isNaN(ctx[0]) ? 0.0 : ctx[0];
    double nBase = Double.isNaN(b.n) ? 0.0 : b.n;
    if (!(prior < Walks.MIN_HABIT_HISTORY && nBase > prior && b.hasLastSeen && b.lastSeenNs < t)) {
      return;
    }
    long n = (long) nBase;
    ctx[0] = n;
    if (!Double.isNaN(b.median)) {
      ctx[7] = b.median;
      ctx[8] = b.p95;
    }
    if (Double.isNaN(ctx[9])) {
      ctx[9] = Walks.seconds(t - b.lastSeenNs);
    }
    if (!device.isEmpty() && b.devices.contains(device) && ctx[10] != 1.0) {
      ctx[10] = 1.0;
      double fewer = ctx[11] - 1.0;
      ctx[11] = fewer > 0.0 ? fewer : 0.0; // Python's max(0.0, x): NaN gives 0.0
    }
    if (!country.isEmpty() && b.countries.contains(country)) {
      ctx[13] = 1.0;
    }
    if (!(Double.isNaN(lat) || Double.isNaN(lon) || Double.isNaN(b.homeLat) || Double.isNaN(b.homeLon))) {
      ctx[12] = Walks.haversineKm(lat, lon, b.homeLat, b.homeLon);
    }
    if (n >= Walks.MIN_HABIT_HISTORY && b.hours != null) {
      int h = (int) Math.floorMod(Math.floorDiv(t, 3600 * Walks.NS), 24L);
      long around = b.hours[(h + 23) % 24] + b.hours[h] + b.hours[(h + 1) % 24];
      ctx[14] = (double) around / n;
    }
  }
}
