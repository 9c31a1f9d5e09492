package dev.ecomlambda.speed;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Scores feature rows with a champion exported by ml/export.py (format "ecom-fraud-scorer", version 1): the
 * Isolation Forest's trees as arrays (each leaf holding sklearn's depth + average path length - 1), and for
 * the "blend" / "stacked" variants the forest's training quantiles and the gradient-boosted classifier's
 * trees. The arithmetic is sklearn's: the forest reads float32 features (IsolationForest.score_samples casts
 * to float32), the classifier float64; trees summed in their order; scores equal ml.model's within 1e-9.
 */
public final class ForestScorer implements Serializable {
  private static final long serialVersionUID = 1L;
  public static final String FORMAT = "ecom-fraud-scorer";
  public static final int VERSION = 1;

  final String variant;
  final String[] featureNames;
  final int[] featureIndex; // position of each model input in Features.FEATURE_COLUMNS
  final Tree[] forest;
  final double denominator;
  final double[] quantiles;
  final double[] percentiles;
  final double blendWeight;
  final double baseline;
  final Tree[] classifier;
  public final double threshold;
  /** The champion's reference rows (FraudScorer.reference_), one sorted column per feature; null: none. */
  final double[][] reference;

  static final class Tree implements Serializable {
    private static final long serialVersionUID = 1L;
    int[] feature;
    double[] threshold;
    int[] left;
    int[] right;
    boolean[] missingLeft;
    double[] value;

    static Tree of(JsonNode n) {
      Tree t = new Tree();
      t.feature = ints(n.get("feature"));
      t.threshold = doubles(n.get("threshold"));
      t.left = ints(n.get("left"));
      t.right = ints(n.get("right"));
      t.value = doubles(n.get("value"));
      JsonNode ml = n.get("missing_left");
      t.missingLeft = new boolean[t.feature.length];
      if (ml != null) {
        for (int i = 0; i < t.missingLeft.length; i++) {
          t.missingLeft[i] = ml.get(i).asInt() != 0;
        }
      }
      return t;
    }

    /** sklearn's isolation tree: x[f] (as float32) <= threshold goes left; a leaf has left == -1. */
    double leafFloat32(double[] x) {
      int node = 0;
      while (left[node] != -1) {
        node = (double) (float) x[feature[node]] <= threshold[node] ? left[node] : right[node];
      }
      return value[node];
    }

    /** sklearn's HistGradientBoosting predictor: NaN follows missing_go_to_left, else x <= threshold. */
    double leafFloat64(double[] x) {
      int node = 0;
      while (left[node] != -1) {
        double v = x[feature[node]];
        boolean goLeft = Double.isNaN(v) ? missingLeft[node] : v <= threshold[node];
        node = goLeft ? left[node] : right[node];
      }
      return value[node];
    }
  }

  private ForestScorer(JsonNode root) {
    if (!FORMAT.equals(root.path("format").asText()) || root.path("version").asInt() != VERSION) {
      throw new IllegalArgumentException(
          "not an " + FORMAT + " v" + VERSION + " artifact; re-export it with ml.export.export_scorer");
    }
    variant = root.get("variant").asText();
    JsonNode names = root.get("feature_names");
    featureNames = new String[names.size()];
    featureIndex = new int[names.size()];
    for (int i = 0; i < featureNames.length; i++) {
      featureNames[i] = names.get(i).asText();
      featureIndex[i] = java.util.Arrays.asList(Features.FEATURE_COLUMNS).indexOf(featureNames[i]);
      if (featureIndex[i] < 0) {
        throw new IllegalArgumentException(
            "the model reads feature " + featureNames[i] + " that the JVM does not compute (Features.java)");
      }
    }
    forest = trees(root.get("forest").get("trees"));
    denominator = root.get("forest").get("denominator").asDouble();
    quantiles = doubles(root.get("forest").get("quantiles"));
    percentiles = doubles(root.get("forest").get("percentiles"));
    blendWeight = root.path("blend_weight").asDouble(0.5);
    threshold = root.path("threshold").asDouble(1.0);
    JsonNode ref = root.get("reference");
    if (ref != null && !ref.isNull()) {
      reference = new double[ref.size()][];
      for (int j = 0; j < reference.length; j++) {
        JsonNode col = ref.get(j);
        reference[j] = new double[col.size()];
        for (int i = 0; i < col.size(); i++) {
          reference[j][i] = col.get(i).isNull() ? Double.NaN : col.get(i).asDouble();
        }
      }
    } else {
      reference = null;
    }
    JsonNode clf = root.get("classifier");
    if (clf != null && !clf.isNull()) {
      baseline = clf.get("baseline").asDouble();
      classifier = trees(clf.get("trees"));
    } else {
      baseline = 0.0;
      classifier = null;
    }
    if (!variant.equals("iforest") && classifier == null) {
      throw new IllegalArgumentException("variant " + variant + " needs its classifier in the artifact");
    }
  }

  public static ForestScorer fromJson(String json) {
    try {
      return new ForestScorer(new ObjectMapper().readTree(json));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  public static ForestScorer fromFile(String path) {
    try {
      return fromJson(Files.readString(Path.of(path)));
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read the scorer artifact " + path, e);
    }
  }

  /** sklearn's anomaly score 2^(-E[h]/c) (minus IsolationForest.score_samples). */
  double forestScore(double[] x) {
    double depths = 0.0;
    for (Tree t : forest) {
      depths += t.leafFloat32(x);
    }
    return RoundedMath.exp2(-(denominator != 0 ? depths / denominator : 1.0));
  }

  double classifierProba(double[] x) {
    double raw = 0.0 + baseline;
    for (Tree t : classifier) {
      raw += t.leafFloat64(x);
    }
    return 1.0 / (1.0 + Math.exp(-raw));
  }

  /** numpy.interp(x, quantiles, percentiles), numpy's rules (ties and the ends included). */
  static double interp(double x, double[] xp, double[] fp) {
    int n = xp.length;
    if (Double.isNaN(x)) {
      return x;
    }
    if (x > xp[n - 1]) {
      return fp[n - 1];
    }
    if (x < xp[0]) {
      return fp[0];
    }
    int lo = 0;
    int hi = n; // first index with xp > x
    while (lo < hi) {
      int mid = (lo + hi) >>> 1;
      if (xp[mid] <= x) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    int j = lo - 1;
    if (j == n - 1 || xp[j] == x) {
      return fp[j];
    }
    double slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
    double r = slope * (x - xp[j]) + fp[j];
    if (Double.isNaN(r)) {
      r = slope * (x - xp[j + 1]) + fp[j + 1];
      if (Double.isNaN(r) && fp[j] == fp[j + 1]) {
        r = fp[j];
      }
    }
    return r;
  }

  private static double clip(double v) {
    return Math.min(1.0, Math.max(0.0, v));
  }

  /** The fraud score in [0, 1] of one row of Features.FEATURE_COLUMNS. */
  public double score(double[] features) {
    double[] x = new double[featureIndex.length + 1];
    for (int i = 0; i < featureIndex.length; i++) {
      x[i] = features[featureIndex[i]];
    }
    double s = forestScore(x);
    switch (variant) {
      case "iforest":
        return clip(s);
      case "blend":
        double pct = interp(s, quantiles, percentiles);
        return clip((1 - blendWeight) * pct + blendWeight * classifierProba(x));
      case "stacked":
        x[featureIndex.length] = s;
        return clip(classifierProba(x));
      default:
        throw new IllegalArgumentException("unknown variant " + variant);
    }
  }

  private static Tree[] trees(JsonNode arr) {
    Tree[] out = new Tree[arr.size()];
    for (int i = 0; i < out.length; i++) {
      out[i] = Tree.of(arr.get(i));
    }
    return out;
  }

  static int[] ints(JsonNode arr) {
    int[] out = new int[arr.size()];
    for (int i = 0; i < out.length; i++) {
      out[i] = arr.get(i).asInt();
    }
    return out;
  }

  static double[] doubles(JsonNode arr) {
    if (arr == null || arr.isNull()) {
      return new double[0];
    }
    double[] out = new double[arr.size()];
    for (int i = 0; i < out.length; i++) {
      out[i] = arr.get(i).asDouble();
    }
    return out;
  }
}
