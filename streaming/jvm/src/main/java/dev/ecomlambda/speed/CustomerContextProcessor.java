package dev.ecomlambda.speed;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.streaming.OutputMode;
import org.apache.spark.sql.streaming.StatefulProcessor;
import org.apache.spark.sql.streaming.TTLConfig;
import org.apache.spark.sql.streaming.TimeMode;
import org.apache.spark.sql.streaming.TimerValues;
import org.apache.spark.sql.streaming.ValueState;
import org.apache.spark.sql.types.StructType;
import scala.jdk.javaapi.CollectionConverters;

/**
 * transformWithState keyed by customer_id: appends CUSTOMER_CONTEXT_COLUMNS to every row (ml.features
 * .customer_context's numbers) from the customer's state, one ValueState of bytes per customer (RocksDB).
 * A batch's rows of one customer are walked in (event_ts, transaction_id) order, as the Python walk does;
 * late events are scored against the state as it is, never dropped. Rows under the rejected key pass through
 * with NULL context. The state expires after {@code ttlMs} without an event (processing-time TTL, Spark's
 * only kind: it bounds memory; the batch layer's baselines then stand in, as for the Python state).
 */
public final class CustomerContextProcessor extends StatefulProcessor<String, Row, Row> {
  private static final long serialVersionUID = 1L;
  private final long ttlMs;
  private final int txId;
  private final int eventTs;
  private final int amount;
  private final int device;
  private final int country;
  private final int lat;
  private final int lon;
  private transient ValueState<byte[]> state;

  public CustomerContextProcessor(StructType schema, long ttlMs) {
    this.ttlMs = ttlMs;
    this.txId = schema.fieldIndex("transaction_id");
    this.eventTs = schema.fieldIndex("event_ts");
    this.amount = schema.fieldIndex("amount");
    this.device = schema.fieldIndex("device_id");
    this.country = schema.fieldIndex("ip_country");
    this.lat = schema.fieldIndex("ip_lat");
    this.lon = schema.fieldIndex("ip_lon");
  }

  static TTLConfig ttl(long ttlMs) {
    return ttlMs > 0 ? TTLConfig.apply(java.time.Duration.ofMillis(ttlMs)) : TTLConfig.NONE();
  }

  @Override
  public void init(OutputMode outputMode, TimeMode timeMode) {
    state = getHandle().getValueState("customer", Encoders.BINARY(), ttl(ttlMs));
  }

  @Override
  public scala.collection.Iterator<Row> handleInputRows(
      String key, scala.collection.Iterator<Row> rows, TimerValues timerValues) {
    List<Row> batch = new ArrayList<>();
    rows.foreach(batch::add);
    List<Row> out = new ArrayList<>(batch.size());
    double[] ctx = new double[Walks.CUSTOMER_CONTEXT_COLUMNS.length];
    if (Rows.REJECTED_KEY.equals(key)) {
      java.util.Arrays.fill(ctx, Double.NaN);
      for (Row r : batch) {
        out.add(Rows.append(r, ctx));
      }
      return CollectionConverters.asScala(out.iterator());
    }
    byte[] raw = state.exists() ? state.get() : null;
    Walks.CustomerState st = raw == null ? new Walks.CustomerState() : Walks.CustomerState.fromBytes(raw);
    long[] t = new long[batch.size()];
    Integer[] order = new Integer[batch.size()];
    for (int i = 0; i < order.length; i++) {
      order[i] = i;
      t[i] = Rows.epochNs(batch.get(i).get(eventTs));
    }
    // (event_time, transaction_id): a total order, so any split into batches walks the same way (stable)
    java.util.Arrays.sort(
        order,
        Comparator.<Integer>comparingLong(i -> t[i])
            .thenComparing(i -> Rows.str(batch.get(i).get(txId))));
    for (int i : order) {
      Row r = batch.get(i);
      Walks.customerStep(
          st,
          t[i],
          Walks.cents(Rows.toDouble(r.get(amount))),
          Rows.str(r.get(device)),
          Rows.orEmpty(r.get(country)),
          Rows.toDouble(r.get(lat)),
          Rows.toDouble(r.get(lon)),
          ctx);
      out.add(Rows.append(r, ctx));
    }
    state.update(st.toBytes());
    return CollectionConverters.asScala(out.iterator());
  }
}
