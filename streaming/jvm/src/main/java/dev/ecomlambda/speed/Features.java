package dev.ecomlambda.speed;

import java.util.Map;
import java.util.Set;

/**
 * The JVM twin of ml.features.derive_features: contract columns + context -> FEATURE_COLUMNS (the model's
 * input). Same defaults for missing context (NaN), same order of operations.
 */
public final class Features {
  /** ml.features.FEATURE_COLUMNS, in order. */
  public static final String[] FEATURE_COLUMNS = {
    "log_amount",
    "amount_to_median",
    "amount_to_p95",
    "is_first_tx",
    "log_prior_tx",
    "cust_count_10m",
    "cust_count_1h",
    "cust_count_24h",
    "amount_1h_to_median",
    "log_secs_since_last",
    "is_new_device",
    "new_devices_1h",
    "log_home_distance_km",
    "is_new_country",
    "hour_share",
    "term_count_1h",
    "term_burst",
    "term_far_24h",
    "currency_mismatch",
    "term_chargebacks_7d",
    "cust_chargebacks_30d",
    "n_items",
  };

  private static final Set<String> EURO =
      Set.of(
          "AT", "BE", "CY", "DE", "EE", "ES", "FI", "FR", "GR", "HR", "IE", "IT", "LT", "LU", "LV",
          "MT", "NL", "PT", "SI", "SK");
  private static final Map<String, String> NON_EURO = Map.of("US", "USD", "CA", "CAD", "GB", "GBP");

  /** events.contract.UNKNOWN_COUNTRY: no evidence of a currency mismatch. */
  static final String UNKNOWN_COUNTRY = "ZZ";

  private Features() {}

  /** ml.features.COUNTRY_CURRENCY.get(country, "other"). */
  static String expectedCurrency(String country) {
    if (EURO.contains(country)) {
      return "EUR";
    }
    return NON_EURO.getOrDefault(country, "other");
  }

  private static double or(double v, double fill) {
    return Double.isNaN(v) ? fill : v;
  }

  /**
   * One row's features. {@code ctx} holds CUSTOMER_CONTEXT_COLUMNS, TERMINAL_CONTEXT_COLUMNS and the two
   * chargeback columns, in ml.features.CONTEXT_COLUMNS order (NaN = missing). {@code currency} null: the
   * frame has no currency column (no mismatch). {@code nItems} NaN counts as 1.
   */
  public static void derive(
      double amountIn, String currency, String country, double nItems, double[] ctx, double[] out) {
    double amount = or(amountIn, 0.0);
    double nPrior = or(ctx[0], 0.0);
    double median = ctx[7];
    median = (Double.isNaN(median) || median <= 0) ? Math.max(amount, 0.01) : median;
    double p95 = ctx[8];
    p95 = (Double.isNaN(p95) || p95 <= 0) ? Math.max(amount, 0.01) : p95;
    double secs = ctx[9];
    double dist = or(ctx[12], 0.0);
    double t1 = or(ctx[15], 0.0);
    double t24 = or(ctx[16], 0.0);
    out[0] = Math.log1p(amount);
    out[1] = amount / median;
    out[2] = amount / p95;
    out[3] = nPrior == 0 ? 1.0 : 0.0;
    out[4] = Math.log1p(nPrior);
    out[5] = or(ctx[1], 0.0);
    out[6] = or(ctx[2], 0.0);
    out[7] = or(ctx[3], 0.0);
    out[8] = (or(ctx[5], 0.0) + amount) / median;
    out[9] = Math.log1p(Double.isNaN(secs) ? 30 * 86400.0 : Math.max(secs, 0));
    out[10] = 1.0 - or(ctx[10], 0.0);
    out[11] = or(ctx[11], 1.0);
    out[12] = Math.log1p(dist);
    out[13] = 1.0 - or(ctx[13], 1.0);
    out[14] = or(ctx[14], 3 / 24.0);
    out[15] = t1;
    out[16] = (t1 + 1.0) / (t24 / 24.0 + 1.0);
    out[17] = or(ctx[19], 0.0);
    String c = country == null ? "" : country;
    boolean known = !c.isEmpty() && !UNKNOWN_COUNTRY.equals(c);
    out[18] = (currency != null && known && !expectedCurrency(c).equals(currency)) ? 1.0 : 0.0;
    out[19] = or(ctx[20], 0.0);
    out[20] = or(ctx[21], 0.0);
    out[21] = or(nItems, 1.0);
  }
}
