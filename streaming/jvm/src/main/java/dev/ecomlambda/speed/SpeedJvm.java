package dev.ecomlambda.speed;

import java.util.ArrayList;
import java.util.List;
import org.apache.spark.api.java.function.MapFunction;
import org.apache.spark.api.java.function.MapPartitionsFunction;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.streaming.OutputMode;
import org.apache.spark.sql.streaming.TimeMode;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;
import scala.reflect.ClassTag$;

/**
 * What PySpark calls through py4j: {@code spark._jvm.dev.ecomlambda.speed.SpeedJvm.withContext(df._jdf, ttlMs)}
 * and wraps the answer with {@code pyspark.sql.DataFrame(jdf, spark)}. Input: the speed layer's rows
 * (streaming.transforms.speed_transactions; a rejected row has reject_reason set and passes through).
 *
 * <p>With a TTL the state runs in processing-time mode, where Spark asks for a no-data micro-batch after
 * every batch: start the query with spark.sql.streaming.noDataMicroBatches.enabled=false (bench/floor.py
 * JVM_STATE_CONF), else an idle query spins through empty batches and an availableNow one never ends. TTL
 * eviction still runs at the end of every batch with data.
 */
public final class SpeedJvm {
  private SpeedJvm() {}

  private static String keyOf(Row r, int reject, int id) {
    if (!r.isNullAt(reject)) {
      return Rows.REJECTED_KEY;
    }
    return Rows.str(r.get(id));
  }

  private static TimeMode timeMode(long ttlMs) {
    // Spark's state TTL runs on processing time only; without TTL no time mode at all (never drop late rows)
    return ttlMs > 0 ? TimeMode.ProcessingTime() : TimeMode.None();
  }

  /** df + CUSTOMER_CONTEXT_COLUMNS, keyed state by customer_id (transformWithState, append mode). */
  public static Dataset<Row> withCustomerContext(Dataset<Row> df, long ttlMs) {
    return withCustomerContext(df, ttlMs, -1L);
  }

  /**
   * {@code holdIdleMs >= 0}: event-time order (the customer processor holds each row until the watermark
   * has passed it, see {@link CustomerContextProcessor}); needs processing-time timers, so this mode runs
   * in processing time whatever the TTL.
   */
  public static Dataset<Row> withCustomerContext(Dataset<Row> df, long ttlMs, long holdIdleMs) {
    StructType schema = df.schema();
    int reject = schema.fieldIndex("reject_reason");
    int id = schema.fieldIndex("customer_id");
    return df.groupByKey((MapFunction<Row, String>) r -> keyOf(r, reject, id), Encoders.STRING())
        .transformWithState(
            new CustomerContextProcessor(schema, ttlMs, holdIdleMs),
            holdIdleMs >= 0 ? TimeMode.ProcessingTime() : timeMode(ttlMs),
            OutputMode.Append(),
            Encoders.row(Rows.withDoubles(schema, Walks.CUSTOMER_CONTEXT_COLUMNS)));
  }

  /** df (with cust_home_distance_km) + TERMINAL_CONTEXT_COLUMNS, keyed state by terminal_id. */
  public static Dataset<Row> withTerminalContext(Dataset<Row> df, long ttlMs) {
    StructType schema = df.schema();
    int reject = schema.fieldIndex("reject_reason");
    int id = schema.fieldIndex("terminal_id");
    return df.groupByKey((MapFunction<Row, String>) r -> keyOf(r, reject, id), Encoders.STRING())
        .transformWithState(
            new TerminalContextProcessor(schema, ttlMs),
            timeMode(ttlMs),
            OutputMode.Append(),
            Encoders.row(Rows.withDoubles(schema, Walks.TERMINAL_CONTEXT_COLUMNS)));
  }

  /** Customer then terminal context, as the Python speed layer orders them. */
  public static Dataset<Row> withContext(Dataset<Row> df, long ttlMs) {
    return withTerminalContext(withCustomerContext(df, ttlMs), ttlMs);
  }

  /** The same in event-time order: rows reach the terminal state in event-time order across partitions. */
  public static Dataset<Row> withContext(Dataset<Row> df, long ttlMs, long holdIdleMs) {
    return withTerminalContext(withCustomerContext(df, ttlMs, holdIdleMs), ttlMs);
  }

  /** The JVM's feature and context column lists (the parity tests compare them with ml.features). */
  public static String[] customerContextColumns() {
    return Walks.CUSTOMER_CONTEXT_COLUMNS.clone();
  }

  public static String[] terminalContextColumns() {
    return Walks.TERMINAL_CONTEXT_COLUMNS.clone();
  }

  public static String[] featureColumns() {
    return Features.FEATURE_COLUMNS.clone();
  }

  /** Reads a row's features (Features.derive) by the column positions of one schema. */
  static final class FeatureReader implements java.io.Serializable {
    private static final long serialVersionUID = 1L;
    final int[] ctxIdx;
    final int amount;
    final int currency;
    final int country;
    final int nItems;
    final int reject;

    FeatureReader(StructType schema) {
      String[] ctxCols = contextColumns();
      ctxIdx = new int[ctxCols.length];
      for (int i = 0; i < ctxCols.length; i++) {
        ctxIdx[i] = index(schema, ctxCols[i]);
      }
      amount = schema.fieldIndex("amount");
      currency = index(schema, "currency");
      country = schema.fieldIndex("ip_country");
      nItems = index(schema, "n_items");
      reject = index(schema, "reject_reason");
    }

    private static int index(StructType schema, String name) {
      return schema.getFieldIndex(name).isDefined() ? schema.fieldIndex(name) : -1;
    }

    boolean rejected(Row r) {
      return reject >= 0 && !r.isNullAt(reject);
    }

    void read(Row r, double[] ctx, double[] feats) {
      readContext(r, ctx);
      derive(r, ctx, feats);
    }

    void readContext(Row r, double[] ctx) {
      for (int i = 0; i < ctx.length; i++) {
        ctx[i] = ctxIdx[i] < 0 ? Double.NaN : Rows.toDouble(r.get(ctxIdx[i]));
      }
    }

    void derive(Row r, double[] ctx, double[] feats) {
      Features.derive(
          Rows.toDouble(r.get(amount)),
          currency < 0 ? null : Rows.orEmpty(r.get(currency)),
          Rows.orEmpty(r.get(country)),
          nItems < 0 ? Double.NaN : Rows.toDouble(r.get(nItems)),
          ctx,
          feats);
    }
  }

  private static Object[] valuesPlus(Row r, int extra) {
    Object[] values = new Object[r.length() + extra];
    for (int i = 0; i < r.length(); i++) {
      values[i] = r.get(i);
    }
    return values;
  }

  /**
   * df + "feature_" + FEATURE_COLUMNS as the JVM derives them (what the scorer reads; for the parity tests;
   * prefixed because some features share a context column's name).
   */
  public static Dataset<Row> withFeatures(Dataset<Row> df) {
    FeatureReader reader = new FeatureReader(df.schema());
    String[] names = new String[Features.FEATURE_COLUMNS.length];
    for (int j = 0; j < names.length; j++) {
      names[j] = "feature_" + Features.FEATURE_COLUMNS[j];
    }
    StructType out = Rows.withDoubles(df.schema(), names);
    return df.map(
        (MapFunction<Row, Row>)
            r -> {
              double[] ctx = new double[reader.ctxIdx.length];
              double[] feats = new double[Features.FEATURE_COLUMNS.length];
              Object[] values = valuesPlus(r, feats.length);
              if (!reader.rejected(r)) {
                reader.read(r, ctx, feats);
                for (int j = 0; j < feats.length; j++) {
                  values[r.length() + j] = feats[j];
                }
              }
              return RowFactory.create(values);
            },
        Encoders.row(out));
  }

  /**
   * df (contract + CONTEXT_COLUMNS; chargeback columns NULL/absent count as 0) + fraud_score, scored by the
   * champion exported to {@code artifactJson} (ml.export.scorer_json), broadcast once per call.
   */
  public static Dataset<Row> score(Dataset<Row> df, String artifactJson) {
    ForestScorer scorer = ForestScorer.fromJson(artifactJson);
    Broadcast<ForestScorer> shipped =
        df.sparkSession()
            .sparkContext()
            .broadcast(scorer, ClassTag$.MODULE$.apply(ForestScorer.class));
    FeatureReader reader = new FeatureReader(df.schema());
    List<StructField> fields = new ArrayList<>(List.of(df.schema().fields()));
    fields.add(DataTypes.createStructField("fraud_score", DataTypes.DoubleType, true));
    StructType out = DataTypes.createStructType(fields);
    return df.mapPartitions(
        (MapPartitionsFunction<Row, Row>)
            rows -> {
              ForestScorer s = shipped.value();
              double[] ctx = new double[reader.ctxIdx.length];
              double[] feats = new double[Features.FEATURE_COLUMNS.length];
              List<Row> scored = new ArrayList<>();
              while (rows.hasNext()) {
                Row r = rows.next();
                Object[] values = valuesPlus(r, 1);
                if (!reader.rejected(r)) {
                  reader.read(r, ctx, feats);
                  values[r.length()] = s.score(feats);
                }
                scored.add(RowFactory.create(values));
              }
              return scored.iterator();
            },
        Encoders.row(out));
  }

  /** The batch layer's context (every chargeback, every baseline) collected and broadcast once. */
  public static Broadcast<BatchContext> broadcastContext(
      Dataset<Row> chargebacks, Dataset<Row> baselines) {
    BatchContext context = BatchContext.of(chargebacks.collectAsList(), baselines.collectAsList());
    return chargebacks
        .sparkSession()
        .sparkContext()
        .broadcast(context, ClassTag$.MODULE$.apply(BatchContext.class));
  }

  /** The champion's exported scorer (ml.export.scorer_json), parsed and broadcast once per version. */
  public static Broadcast<ForestScorer> broadcastScorer(
      org.apache.spark.sql.SparkSession spark, String artifactJson) {
    return spark
        .sparkContext()
        .broadcast(ForestScorer.fromJson(artifactJson), ClassTag$.MODULE$.apply(ForestScorer.class));
  }

  /**
   * The stream's scoring in the JVM: df (contract + customer and terminal context, as withContext gives it)
   * -> the same columns with the customer context filled from the baselines (BatchContext.fill), plus
   * term_chargebacks_7d, cust_chargebacks_30d, fraud_score, is_alert (score >= the champion's threshold)
   * and reasons (an alert's top 3, ml.explain's JSON; NULL for other rows). What
   * streaming.speed.scoring.score_frame computes in Python (chargeback_context, fill_from_baselines, the
   * model's score, the alert flag, ml.explain), proven equal by tests/streaming/test_jvm_scoring_parity.py.
   * Rejected rows pass through with NULL context and score.
   */
  public static Dataset<Row> scoreInContext(
      Dataset<Row> df, Broadcast<ForestScorer> scorer, Broadcast<BatchContext> context) {
    StructType in = df.schema();
    FeatureReader reader = new FeatureReader(in);
    String[] customerCols = Walks.CUSTOMER_CONTEXT_COLUMNS;
    int[] customerIdx = new int[customerCols.length];
    for (int i = 0; i < customerCols.length; i++) {
      customerIdx[i] = in.fieldIndex(customerCols[i]);
    }
    int customer = in.fieldIndex("customer_id");
    int terminal = in.fieldIndex("terminal_id");
    int eventTs = in.fieldIndex("event_ts");
    int device = in.fieldIndex("device_id");
    int country = in.fieldIndex("ip_country");
    int lat = in.fieldIndex("ip_lat");
    int lon = in.fieldIndex("ip_lon");
    int amount = in.fieldIndex("amount");
    int currency = reader.currency;
    StructType out =
        Rows.withDoubles(in, new String[] {"term_chargebacks_7d", "cust_chargebacks_30d", "fraud_score"})
            .add("is_alert", DataTypes.BooleanType, true)
            .add("reasons", DataTypes.StringType, true);
    return df.mapPartitions(
        (MapPartitionsFunction<Row, Row>)
            rows -> {
              ForestScorer s = scorer.value();
              BatchContext c = context.value();
              double[] ctx = new double[reader.ctxIdx.length];
              double[] feats = new double[Features.FEATURE_COLUMNS.length];
              Explain.Row why = new Explain.Row();
              List<Row> scored = new ArrayList<>();
              while (rows.hasNext()) {
                Row r = rows.next();
                Object[] values = valuesPlus(r, 5);
                if (!reader.rejected(r)) {
                  reader.readContext(r, ctx);
                  long t = Rows.epochNs(r.get(eventTs));
                  String cust = Rows.str(r.get(customer));
                  c.chargebacks(Rows.str(r.get(terminal)), cust, t, ctx);
                  c.fill(
                      cust,
                      t,
                      Rows.str(r.get(device)),
                      Rows.orEmpty(r.get(country)),
                      Rows.toDouble(r.get(lat)),
                      Rows.toDouble(r.get(lon)),
                      ctx);
                  for (int i = 0; i < customerIdx.length; i++) {
                    values[customerIdx[i]] = Double.isNaN(ctx[i]) ? null : ctx[i];
                  }
                  reader.derive(r, ctx, feats);
                  values[r.length()] = ctx[ctx.length - 2];
                  values[r.length() + 1] = ctx[ctx.length - 1];
                  double score = s.score(feats);
                  values[r.length() + 2] = score;
                  boolean alert = score >= s.threshold;
                  values[r.length() + 3] = alert;
                  if (alert) {
                    why.amount = Rows.toDouble(r.get(amount));
                    why.currency = currency < 0 ? null : (String) r.get(currency);
                    why.ipCountry = (String) r.get(country);
                    why.hourUtc = (int) Math.floorMod(Math.floorDiv(t, 3_600_000_000_000L), 24L);
                    why.ctx = ctx;
                    values[r.length() + 4] = Explain.reasons(why, feats, s.reference);
                  }
                }
                scored.add(RowFactory.create(values));
              }
              return scored.iterator();
            },
        Encoders.row(out));
  }

  /** ml.features.CONTEXT_COLUMNS: customer + terminal + the two chargeback counts. */
  static String[] contextColumns() {
    String[] c = Walks.CUSTOMER_CONTEXT_COLUMNS;
    String[] t = Walks.TERMINAL_CONTEXT_COLUMNS;
    String[] all = new String[c.length + t.length + 2];
    System.arraycopy(c, 0, all, 0, c.length);
    System.arraycopy(t, 0, all, c.length, t.length);
    all[all.length - 2] = "term_chargebacks_7d";
    all[all.length - 1] = "cust_chargebacks_30d";
    return all;
  }
}
