package dev.ecomlambda.speed;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The JVM twin of ml.features' keyed walks (customer_context, terminal_context): one key's state and the
 * step that gives an event its context from strictly earlier events, then folds the event in.
 *
 * <p>ml/features.py is the reference; every constant, window, memory and rounding here mirrors it
 * (amounts in integer cents, times in integer nanoseconds, the same median / p95 rule, the same most-recently
 * -used device and country memories). tests/streaming/test_jvm_parity.py proves the outputs equal bit for bit.
 * Pure Java: no Spark types, so the processors only adapt rows to it.
 */
public final class Walks {
  static final long NS = 1_000_000_000L;
  static final long[] CUSTOMER_WINDOWS = {600, 3600, 86400}; // 10m, 1h, 24h
  static final int AMOUNT_HISTORY = 50;
  static final int DEVICE_MEMORY = 20;
  static final int COUNTRY_MEMORY = 20;
  static final int MIN_HABIT_HISTORY = 5;
  static final double FAR_FROM_HOME_KM = 500.0;

  /** ml.features.CUSTOMER_CONTEXT_COLUMNS, in order (the output of {@link #customerStep}). */
  public static final String[] CUSTOMER_CONTEXT_COLUMNS = {
    "cust_n_prior",
    "cust_count_10m",
    "cust_count_1h",
    "cust_count_24h",
    "cust_amount_10m",
    "cust_amount_1h",
    "cust_amount_24h",
    "cust_amount_median",
    "cust_amount_p95",
    "cust_secs_since_last",
    "cust_device_seen",
    "cust_new_devices_1h",
    "cust_home_distance_km",
    "cust_country_seen",
    "cust_hour_share",
  };

  /** ml.features.TERMINAL_CONTEXT_COLUMNS, in order (the output of {@link #terminalStep}). */
  public static final String[] TERMINAL_CONTEXT_COLUMNS = {
    "term_count_1h", "term_count_24h", "term_amount_1h", "term_amount_24h", "term_far_24h",
  };

  private Walks() {}

  /** What the walk remembers about one customer (ml.features.CustomerState). */
  public static final class CustomerState {
    long n;
    boolean hasLast;
    long lastT;
    final TimeWindow[] windows = new TimeWindow[CUSTOMER_WINDOWS.length];
    LongDeque recentAmounts = new LongDeque();
    long[] sortedAmounts = new long[0];
    final List<String> devices = new ArrayList<>();
    LongDeque newDeviceTimes = new LongDeque();
    final List<String> countries = new ArrayList<>();
    long geoN;
    double latSum;
    double lonSum;
    final long[] hours = new long[24];

    public CustomerState() {
      for (int i = 0; i < windows.length; i++) {
        windows[i] = new TimeWindow(CUSTOMER_WINDOWS[i]);
      }
    }

    /** The newest event time seen (ns), or Long.MIN_VALUE. */
    public long lastT() {
      return hasLast ? lastT : Long.MIN_VALUE;
    }

    public byte[] toBytes() {
      ByteArrayOutputStream buf = new ByteArrayOutputStream(512);
      try (DataOutputStream out = new DataOutputStream(buf)) {
        out.writeByte(1); // layout version
        out.writeLong(n);
        out.writeBoolean(hasLast);
        out.writeLong(lastT);
        for (TimeWindow w : windows) {
          w.write(out);
        }
        recentAmounts.write(out);
        writeStrings(out, devices);
        newDeviceTimes.write(out);
        writeStrings(out, countries);
        out.writeLong(geoN);
        out.writeDouble(latSum);
        out.writeDouble(lonSum);
        for (long h : hours) {
          out.writeLong(h);
        }
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      return buf.toByteArray();
    }

    public static CustomerState fromBytes(byte[] raw) {
      CustomerState st = new CustomerState();
      try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(raw))) {
        int version = in.readByte();
        if (version != 1) {
          throw new IllegalStateException("unknown customer state layout " + version);
        }
        st.n = in.readLong();
        st.hasLast = in.readBoolean();
        st.lastT = in.readLong();
        for (int i = 0; i < st.windows.length; i++) {
          st.windows[i] = TimeWindow.read(CUSTOMER_WINDOWS[i], in);
        }
        st.recentAmounts = LongDeque.read(in);
        st.sortedAmounts = new long[st.recentAmounts.size()];
        for (int i = 0; i < st.sortedAmounts.length; i++) {
          st.sortedAmounts[i] = st.recentAmounts.get(i);
        }
        Arrays.sort(st.sortedAmounts);
        readStrings(in, st.devices);
        st.newDeviceTimes = LongDeque.read(in);
        readStrings(in, st.countries);
        st.geoN = in.readLong();
        st.latSum = in.readDouble();
        st.lonSum = in.readDouble();
        for (int h = 0; h < 24; h++) {
          st.hours[h] = in.readLong();
        }
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      return st;
    }
  }

  /** ml.features.TerminalState: 1 h, 24 h and far-from-home 24 h windows. */
  public static final class TerminalState {
    final TimeWindow w1h = new TimeWindow(3600);
    final TimeWindow w24h = new TimeWindow(86400);
    final TimeWindow far24h = new TimeWindow(86400);
    TimeWindow[] all = {w1h, w24h, far24h};

    /** The newest event time in any window (ns), or Long.MIN_VALUE. */
    public long lastT() {
      long last = Long.MIN_VALUE;
      for (TimeWindow w : all) {
        if (!w.times.isEmpty()) {
          last = Math.max(last, w.times.get(w.times.size() - 1));
        }
      }
      return last;
    }

    public byte[] toBytes() {
      ByteArrayOutputStream buf = new ByteArrayOutputStream(256);
      try (DataOutputStream out = new DataOutputStream(buf)) {
        out.writeByte(1);
        for (TimeWindow w : all) {
          w.write(out);
        }
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      return buf.toByteArray();
    }

    public static TerminalState fromBytes(byte[] raw) {
      try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(raw))) {
        int version = in.readByte();
        if (version != 1) {
          throw new IllegalStateException("unknown terminal state layout " + version);
        }
        TimeWindow a = TimeWindow.read(3600, in);
        TimeWindow b = TimeWindow.read(86400, in);
        TimeWindow c = TimeWindow.read(86400, in);
        TerminalState st = new TerminalState(a, b, c);
        return st;
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }

    public TerminalState() {}

    private TerminalState(TimeWindow a, TimeWindow b, TimeWindow c) {
      copy(a, w1h);
      copy(b, w24h);
      copy(c, far24h);
    }

    private static void copy(TimeWindow from, TimeWindow to) {
      for (int i = 0; i < from.times.size(); i++) {
        to.add(from.times.get(i), from.cents.get(i));
      }
    }
  }

  /** ml.features._cents: round half to even of amount * 100 (numpy's np.round). */
  public static long cents(double amount) {
    return (long) Math.rint(amount * 100.0);
  }

  /** ml.features._haversine_km, the same operations in the same order. */
  static double haversineKm(double lat1, double lon1, double lat2, double lon2) {
    double p1 = Math.toRadians(lat1);
    double p2 = Math.toRadians(lat2);
    double dphi = p2 - p1;
    double dlmb = Math.toRadians(lon2 - lon1);
    double s1 = RoundedMath.sin(dphi / 2);
    double s2 = RoundedMath.sin(dlmb / 2);
    // Python: sin(dphi / 2) ** 2 + cos(p1) * cos(p2) * sin(dlmb / 2) ** 2 (same association)
    double a = s1 * s1 + RoundedMath.cos(p1) * RoundedMath.cos(p2) * (s2 * s2);
    return 2 * 6371.0 * RoundedMath.asin(Math.min(1.0, Math.sqrt(a)));
  }

  /**
   * One customer event: fills {@code out} (CUSTOMER_CONTEXT_COLUMNS, NaN = no value) from the state, then
   * folds the event into the state. {@code country} "" = no country; lat / lon NaN = not located.
   */
  public static void customerStep(
      CustomerState st,
      long t,
      long cents,
      String device,
      String country,
      double lat,
      double lon,
      double[] out) {
    Arrays.fill(out, Double.NaN);
    out[0] = st.n;
    for (int j = 0; j < st.windows.length; j++) {
      TimeWindow w = st.windows[j];
      w.expire(t);
      out[1 + j] = w.count();
      out[4 + j] = w.total / 100.0;
    }
    int k = st.sortedAmounts.length;
    if (k > 0) {
      out[7] = (st.sortedAmounts[(k - 1) / 2] + st.sortedAmounts[k / 2]) / 200.0;
      out[8] = st.sortedAmounts[Math.max(0, (int) Math.ceil(0.95 * k) - 1)] / 100.0;
    }
    if (st.hasLast) {
      // (t - last) / NS exactly as Python's int / int (correctly rounded): times are whole microseconds
      out[9] = seconds(t - st.lastT);
    }
    boolean seen = st.devices.contains(device);
    out[10] = seen ? 1.0 : 0.0;
    LongDeque nd = st.newDeviceTimes;
    while (!nd.isEmpty() && nd.first() <= t - 3600 * NS) {
      nd.removeFirst();
    }
    out[11] = nd.size() + (seen ? 0 : 1);
    boolean located = !(Double.isNaN(lat) || Double.isNaN(lon));
    if (st.geoN != 0 && located) {
      out[12] = haversineKm(lat, lon, st.latSum / st.geoN, st.lonSum / st.geoN);
    }
    out[13] = (country.isEmpty() || st.countries.contains(country)) ? 1.0 : 0.0;
    int hour = (int) Math.floorMod(Math.floorDiv(t, 3600 * NS), 24L);
    if (st.n >= MIN_HABIT_HISTORY) {
      long around = st.hours[(hour + 23) % 24] + st.hours[hour] + st.hours[(hour + 1) % 24];
      out[14] = (double) around / st.n;
    }

    // ---- fold this event into the state (after its own context was taken)
    st.n += 1;
    st.lastT = st.hasLast ? Math.max(st.lastT, t) : t;
    st.hasLast = true;
    for (TimeWindow w : st.windows) {
      w.add(t, cents);
    }
    st.recentAmounts.addLast(cents);
    st.sortedAmounts = insort(st.sortedAmounts, cents);
    if (st.recentAmounts.size() > AMOUNT_HISTORY) {
      long old = st.recentAmounts.removeFirst();
      st.sortedAmounts = removeOne(st.sortedAmounts, old);
    }
    if (seen) {
      st.devices.remove(device);
    } else {
      nd.addLast(t);
    }
    st.devices.add(device);
    if (st.devices.size() > DEVICE_MEMORY) {
      st.devices.remove(0);
    }
    if (!country.isEmpty()
        && !(!st.countries.isEmpty() && st.countries.get(st.countries.size() - 1).equals(country))) {
      st.countries.remove(country);
      st.countries.add(country);
      if (st.countries.size() > COUNTRY_MEMORY) {
        st.countries.remove(0);
      }
    }
    if (located) {
      st.geoN += 1;
      st.latSum += lat;
      st.lonSum += lon;
    }
    st.hours[hour] += 1;
  }

  /**
   * One terminal event: fills {@code out} (TERMINAL_CONTEXT_COLUMNS) then folds the event in. {@code far}:
   * the customer's cust_home_distance_km (NaN counts as 0) is above FAR_FROM_HOME_KM.
   */
  public static void terminalStep(TerminalState st, long t, long cents, boolean far, double[] out) {
    for (TimeWindow w : st.all) {
      w.expire(t);
    }
    out[0] = st.w1h.count();
    out[1] = st.w24h.count();
    out[2] = st.w1h.total / 100.0;
    out[3] = st.w24h.total / 100.0;
    out[4] = st.far24h.count();
    st.w1h.add(t, cents);
    st.w24h.add(t, cents);
    if (far) {
      st.far24h.add(t, cents);
    }
  }

  /** Python's (t1 - t0) / NS for integer nanoseconds, correctly rounded: times are whole microseconds. */
  static double seconds(long diffNs) {
    return (diffNs % 1000 == 0) ? (double) (diffNs / 1000) / 1e6 : (double) diffNs / 1e9;
  }

  static boolean isFar(double homeDistanceKm) {
    return !Double.isNaN(homeDistanceKm) && homeDistanceKm > FAR_FROM_HOME_KM;
  }

  private static long[] insort(long[] sorted, long v) {
    int i = upperBound(sorted, v);
    long[] out = new long[sorted.length + 1];
    System.arraycopy(sorted, 0, out, 0, i);
    out[i] = v;
    System.arraycopy(sorted, i, out, i + 1, sorted.length - i);
    return out;
  }

  private static long[] removeOne(long[] sorted, long v) {
    int i = Arrays.binarySearch(sorted, v);
    long[] out = new long[sorted.length - 1];
    System.arraycopy(sorted, 0, out, 0, i);
    System.arraycopy(sorted, i + 1, out, i, sorted.length - i - 1);
    return out;
  }

  private static int upperBound(long[] a, long v) {
    int lo = 0;
    int hi = a.length;
    while (lo < hi) {
      int mid = (lo + hi) >>> 1;
      if (a[mid] <= v) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo;
  }

  private static void writeStrings(DataOutputStream out, List<String> values) throws IOException {
    out.writeInt(values.size());
    for (String s : values) {
      out.writeUTF(s);
    }
  }

  private static void readStrings(DataInputStream in, List<String> into) throws IOException {
    int n = in.readInt();
    for (int i = 0; i < n; i++) {
      into.add(in.readUTF());
    }
  }
}
