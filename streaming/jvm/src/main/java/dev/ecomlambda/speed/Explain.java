package dev.ecomlambda.speed;

import java.math.BigDecimal;
import java.math.RoundingMode;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The JVM twin of ml.explain: the reasons of an alert, in words, from the row's features and its context.
 * Same rules (feature, group, direction, scale, neutral, weight, when it applies, baseline, sentence), same
 * strength (-log10 of the share of the champion's reference rows at least as extreme; the fixed scale
 * without a reference), same grouping (the strongest of a group speaks), ranking and cut. Sentences format
 * numbers as Python's format specs do (round half to even on the exact binary value). Proven equal to the
 * Python by tests/streaming/test_jvm_scoring_parity.py.
 */
public final class Explain {
  static final double MIN_STRENGTH = 0.5;
  static final int TOP = 3;
  static final double TIE_ULPS = 4;

  // ml.features.CONTEXT_COLUMNS positions (SpeedJvm.contextColumns)
  private static final int N_PRIOR = 0;
  private static final int AMOUNT_1H = 5;
  private static final int MEDIAN = 7;
  private static final int SECS_SINCE_LAST = 9;
  private static final int NEW_DEVICES_1H = 11;
  private static final int HOME_DISTANCE = 12;
  private static final int HOUR_SHARE = 14;
  private static final int TERM_COUNT_1H = 15;
  private static final int TERM_COUNT_24H = 16;

  /** What a rule may read of the row beside its feature value. */
  static final class Row {
    double amount;
    String currency; // null: the row has none (Python prints None)
    String ipCountry; // null or empty: unknown
    int hourUtc;
    double[] ctx; // CONTEXT_COLUMNS, NaN = missing

    double c(int i) {
      return ctx[i];
    }

    // ml.explain._f(row, col, default) reads a NULL context value as NaN (pandas), never the default
    boolean hasPrior() {
      return c(N_PRIOR) > 0;
    }
  }

  private interface Text {
    String of(Row r, double v);
  }

  private interface Baseline {
    Double of(Row r); // null: no baseline
  }

  private interface Applies {
    boolean test(Row r, double v);
  }

  private record Rule(
      String feature,
      String group,
      boolean highIsSuspicious,
      double scale,
      double neutral,
      Text text,
      Baseline baseline,
      Applies applies,
      double weight) {}

  private static final Applies ALWAYS = (r, v) -> true;
  private static final Applies AT_LEAST_ONE = (r, v) -> v >= 1;
  private static final Baseline ZERO = r -> 0.0;
  private static final Baseline NONE = r -> null;

  private static Rule rule(
      String feature,
      String group,
      boolean high,
      double scale,
      double neutral,
      Text text,
      Baseline baseline,
      Applies applies) {
    return new Rule(feature, group, high, scale, neutral, text, baseline, applies, 1.0);
  }

  private static Text velocity(String label) {
    return (r, v) ->
        ((long) v + 1) + " transactions from this customer in the last " + label + " (this one included)";
  }

  private static String deviceText(Row r, double v) {
    long n = (long) r.c(NEW_DEVICES_1H);
    return n >= 2 ? ordinal(n) + " new device this hour" : "a device this customer never used before";
  }

  private static String amountText(Row r, double v) {
    return "amount "
        + fixed(v, 0)
        + "x this customer's median ("
        + fixed(r.amount, 2)
        + " vs "
        + fixed(r.c(MEDIAN), 2)
        + ")";
  }

  /** ml.explain.RULES, in order. */
  private static final Rule[] RULES = {
    rule(
        "currency_mismatch",
        "country",
        true,
        1.0,
        0.0,
        (r, v) ->
            "card charged in "
                + (r.currency == null ? "None" : r.currency)
                + " from an IP in "
                + orElse(r.ipCountry, "?"),
        ZERO,
        AT_LEAST_ONE),
    rule(
        "term_far_24h",
        "terminal_far",
        true,
        2.0,
        0.0,
        (r, v) -> "terminal took " + (long) v + " payments from customers far from home in the last 24 hours",
        ZERO,
        AT_LEAST_ONE),
    rule(
        "amount_to_median",
        "amount",
        true,
        2.0,
        1.0,
        Explain::amountText,
        r -> r.c(MEDIAN),
        (r, v) -> r.hasPrior()),
    rule(
        "amount_1h_to_median",
        "amount",
        true,
        3.0,
        1.0,
        (r, v) ->
            fixed(r.c(AMOUNT_1H) + r.amount, 2)
                + " spent in the last hour, "
                + fixed(v, 0)
                + "x this customer's median purchase",
        r -> r.c(MEDIAN),
        (r, v) -> r.hasPrior()),
    new Rule(
        "log_amount",
        "amount",
        true,
        1.5,
        4.5,
        (r, v) -> "large amount " + fixed(r.amount, 2),
        NONE,
        ALWAYS,
        0.6),
    rule("cust_count_10m", "velocity", true, 1.0, 0.0, velocity("10 minutes"), ZERO, ALWAYS),
    rule("cust_count_1h", "velocity", true, 1.5, 0.0, velocity("hour"), ZERO, ALWAYS),
    rule("cust_count_24h", "velocity", true, 3.0, 1.0, velocity("24 hours"), NONE, ALWAYS),
    rule(
        "log_secs_since_last",
        "velocity",
        false,
        2.0,
        12.0,
        (r, v) -> fixed(r.c(SECS_SINCE_LAST), 0) + " s after this customer's previous transaction",
        NONE,
        (r, v) -> !Double.isNaN(r.c(SECS_SINCE_LAST))),
    rule("new_devices_1h", "device", true, 1.0, 0.5, Explain::deviceText, ZERO, AT_LEAST_ONE),
    rule(
        "is_new_device",
        "device",
        true,
        2.0,
        0.0,
        Explain::deviceText,
        ZERO,
        (r, v) -> v >= 1 && r.hasPrior()),
    rule(
        "log_home_distance_km",
        "location",
        true,
        2.0,
        4.0,
        (r, v) -> grouped(r.c(HOME_DISTANCE)) + " km from this customer's usual location",
        ZERO,
        ALWAYS),
    rule(
        "is_new_country",
        "country",
        true,
        1.0,
        0.0,
        (r, v) -> "first transaction from " + orElse(r.ipCountry, "this country") + " for this customer",
        ZERO,
        (r, v) -> v >= 1 && r.hasPrior()),
    rule(
        "hour_share",
        "hour",
        false,
        0.1,
        0.25,
        (r, v) ->
            String.format("unusual hour (%02dh UTC: ", r.hourUtc)
                + fixed(v * 100, 0)
                + "% of this customer's purchases are around this time)",
        r -> 0.125,
        (r, v) -> !Double.isNaN(r.c(HOUR_SHARE))),
    rule(
        "term_chargebacks_7d",
        "terminal_risk",
        true,
        1.0,
        0.0,
        (r, v) -> "terminal with " + (long) v + " chargebacks in the last 7 days",
        ZERO,
        AT_LEAST_ONE),
    rule(
        "cust_chargebacks_30d",
        "customer_risk",
        true,
        1.0,
        0.0,
        (r, v) -> "customer with " + (long) v + " chargebacks in the last 30 days",
        ZERO,
        AT_LEAST_ONE),
    rule(
        "term_burst",
        "terminal_volume",
        true,
        2.0,
        1.5,
        (r, v) ->
            "terminal burst: "
                + ((long) r.c(TERM_COUNT_1H) + 1)
                + " transactions in the last hour vs "
                + fixed(r.c(TERM_COUNT_24H) / 24, 1)
                + "/h over the day",
        r -> r.c(TERM_COUNT_24H) / 24,
        ALWAYS),
    new Rule(
        "is_first_tx",
        "history",
        true,
        2.0,
        0.0,
        (r, v) -> "first transaction of this customer",
        ZERO,
        AT_LEAST_ONE,
        0.6),
    new Rule(
        "n_items", "basket", true, 5.0, 2.0, (r, v) -> (long) v + " items in the basket", NONE, ALWAYS, 0.6),
  };

  private static final int[] FEATURE_OF_RULE = new int[RULES.length];

  static {
    List<String> features = List.of(Features.FEATURE_COLUMNS);
    for (int i = 0; i < RULES.length; i++) {
      FEATURE_OF_RULE[i] = features.indexOf(RULES[i].feature());
      if (FEATURE_OF_RULE[i] < 0) {
        throw new IllegalStateException("reason rule for unknown feature " + RULES[i].feature());
      }
    }
  }

  private Explain() {}

  /** The features the rules speak of (the parity tests compare them with ml.explain.RULES). */
  public static String[] ruleFeatures() {
    String[] out = new String[RULES.length];
    for (int i = 0; i < RULES.length; i++) {
      out[i] = RULES[i].feature();
    }
    return out;
  }

  /** Each rule's [group, high_is_suspicious, scale, neutral, weight] as JSON (for the same test). */
  public static String ruleParameters() {
    StringBuilder out = new StringBuilder("[");
    for (int i = 0; i < RULES.length; i++) {
      Rule r = RULES[i];
      out.append(i == 0 ? "[" : ",[")
          .append(quote(r.group()))
          .append(',')
          .append(r.highIsSuspicious())
          .append(',')
          .append(r.scale())
          .append(',')
          .append(r.neutral())
          .append(',')
          .append(r.weight())
          .append(']');
    }
    return out.append(']').toString();
  }

  private record Item(double strength, String json) {}

  /**
   * The top reasons of one row as ml.explain.reasons_from_features gives them, as a JSON array (the
   * speed.fraud_alerts.reasons value). {@code feats}: FEATURE_COLUMNS; {@code reference}: the champion's
   * sorted reference columns in FEATURE_COLUMNS order (null: fixed scales).
   */
  static String reasons(Row row, double[] feats, double[][] reference) {
    Map<String, Item> best = new LinkedHashMap<>();
    for (int i = 0; i < RULES.length; i++) {
      Rule rule = RULES[i];
      double value = feats[FEATURE_OF_RULE[i]];
      if (!rule.applies().test(row, value)) {
        continue;
      }
      double[] ref = reference == null ? null : reference[FEATURE_OF_RULE[i]];
      double strength = strength(rule, value, ref) * rule.weight();
      if (strength <= 0) {
        continue;
      }
      Item seen = best.get(rule.group());
      if (seen == null || strength > seen.strength()) {
        Double base = rule.baseline().of(row);
        String json =
            "{\"feature\":"
                + quote(rule.feature())
                + ",\"value\":"
                + number(round(value, 4))
                + ",\"baseline\":"
                + (base == null || Double.isNaN(base) ? "null" : number(round(base, 4)))
                + ",\"text\":"
                + quote(rule.text().of(row, value))
                + ",\"strength\":"
                + number(round(strength, 3))
                + "}";
        best.put(rule.group(), new Item(strength, json));
      }
    }
    List<Item> ranked = new ArrayList<>(best.values());
    ranked.sort((a, b) -> Double.compare(b.strength(), a.strength())); // stable, as Python's sorted
    List<Item> strong = new ArrayList<>();
    for (Item it : ranked) {
      if (round(it.strength(), 3) >= MIN_STRENGTH) {
        strong.add(it);
      }
    }
    List<Item> chosen = strong.isEmpty() ? ranked.subList(0, Math.min(1, ranked.size())) : strong;
    StringBuilder out = new StringBuilder("[");
    for (int i = 0; i < Math.min(TOP, chosen.size()); i++) {
      out.append(i == 0 ? "" : ",").append(chosen.get(i).json());
    }
    return out.append(']').toString();
  }

  /** ml.explain._strength. */
  static double strength(Rule rule, double value, double[] ref) {
    if (Double.isNaN(value)) {
      return 0.0;
    }
    if (ref == null) {
      double d = (value - rule.neutral()) / rule.scale();
      return Math.max(0.0, rule.highIsSuspicious() ? d : -d);
    }
    int n = ref.length;
    // For a logarithm a reference value within TIE_ULPS of the row's counts as equal: the reference was
    // computed by numpy, whose SIMD log1p can differ from the JVM's by an ulp, and a tie must stay a tie.
    // Every other feature is plain IEEE arithmetic, the same bits in both: compared exactly.
    double slack = rule.feature().startsWith("log_") ? TIE_ULPS * Math.ulp(value) : 0.0;
    double atLeast =
        rule.highIsSuspicious()
            ? n - searchLeft(ref, value - slack)
            : searchRight(ref, value + slack);
    return -Math.log10(Math.max(atLeast, 0.5) / (n + 1));
  }

  // numpy's ordering: NaN sorts last, -0.0 equals 0.0
  private static boolean less(double a, double b) {
    return a < b || (Double.isNaN(b) && !Double.isNaN(a));
  }

  /** numpy.searchsorted(ref, v, side="left"): the first index whose value is not less than v. */
  static int searchLeft(double[] ref, double v) {
    int lo = 0;
    int hi = ref.length;
    while (lo < hi) {
      int mid = (lo + hi) >>> 1;
      if (less(ref[mid], v)) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo;
  }

  /** numpy.searchsorted(ref, v, side="right"): the first index whose value is greater than v. */
  static int searchRight(double[] ref, double v) {
    int lo = 0;
    int hi = ref.length;
    while (lo < hi) {
      int mid = (lo + hi) >>> 1;
      if (less(v, ref[mid])) {
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    return lo;
  }

  // ------------------------------------------------------------------ Python's number formatting

  private static String orElse(String s, String fallback) {
    return s == null || s.isEmpty() ? fallback : s;
  }

  /** Python's round(x, digits): the exact binary value rounded half to even, back to the nearest double. */
  static double round(double x, int digits) {
    if (Double.isNaN(x) || Double.isInfinite(x)) {
      return x;
    }
    return Double.parseDouble(new BigDecimal(x).setScale(digits, RoundingMode.HALF_EVEN).toPlainString());
  }

  /** Python's f"{x:.{digits}f}". */
  static String fixed(double x, int digits) {
    if (Double.isNaN(x)) {
      return "nan";
    }
    if (Double.isInfinite(x)) {
      return x > 0 ? "inf" : "-inf";
    }
    String s = new BigDecimal(x).setScale(digits, RoundingMode.HALF_EVEN).toPlainString();
    boolean negative = x < 0 || (x == 0 && 1 / x < 0);
    return negative && !s.startsWith("-") ? "-" + s : s;
  }

  /** Python's f"{x:,.0f}". */
  static String grouped(double x) {
    String s = fixed(x, 0);
    if (s.endsWith("nan") || s.endsWith("inf")) {
      return s;
    }
    boolean negative = s.startsWith("-");
    String digits = negative ? s.substring(1) : s;
    StringBuilder out = new StringBuilder();
    for (int i = 0; i < digits.length(); i++) {
      if (i > 0 && (digits.length() - i) % 3 == 0) {
        out.append(',');
      }
      out.append(digits.charAt(i));
    }
    return (negative ? "-" : "") + out;
  }

  static String ordinal(long n) {
    String suffix;
    if (10 <= n % 100 && n % 100 <= 20) {
      suffix = "th";
    } else {
      suffix =
          switch ((int) (n % 10)) {
            case 1 -> "st";
            case 2 -> "nd";
            case 3 -> "rd";
            default -> "th";
          };
    }
    return n + suffix;
  }

  /** A JSON number for a double (integral values keep ".0", as Python's json writes them). */
  static String number(double x) {
    if (Double.isNaN(x) || Double.isInfinite(x)) {
      return "null";
    }
    if (x == Math.rint(x) && Math.abs(x) < 1e15) {
      return (long) x + ".0";
    }
    return Double.toString(x);
  }

  static String quote(String s) {
    StringBuilder out = new StringBuilder(s.length() + 2).append('"');
    for (int i = 0; i < s.length(); i++) {
      char ch = s.charAt(i);
      switch (ch) {
        case '"' -> out.append("\\\"");
        case '\\' -> out.append("\\\\");
        case '\n' -> out.append("\\n");
        case '\r' -> out.append("\\r");
        case '\t' -> out.append("\\t");
        default -> {
          if (ch < 0x20) {
            out.append(String.format("\\u%04x", (int) ch));
          } else {
            out.append(ch);
          }
        }
      }
    }
    return out.append('"').toString();
  }
}
