package dev.ecomlambda.speed;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.streaming.ExpiredTimerInfo;
import org.apache.spark.sql.streaming.ListState;
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
 *
 * <p>In event-time order ({@code holdIdleMs >= 0}; the query reads each Kafka partition as its own source
 * with a zero-delay watermark, so Spark's watermark is the lowest of the partitions' highest event times)
 * a row is held in the key's state until the watermark has passed its millisecond, then walked and
 * emitted: every row this operator emits in a micro-batch is earlier than every row it emits later, so the
 * terminal processor downstream walks each terminal's events in event-time order whatever the partitions'
 * progress (on partitions that are themselves in event-time order, as a replay writes them). A key with held
 * rows gets a processing-time timer every batch, so its rows go out in the batch the watermark passes them
 * even without new input; if the watermark has not moved for {@code holdIdleMs} (a partition gone quiet,
 * the end of a replay) the held rows go out anyway, in order.
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
  private final long holdIdleMs;
  private final StructType schema;
  private transient ValueState<byte[]> state;
  // event-time order only: the rows waiting for the watermark, and (watermark last seen to move, when)
  private transient ListState<Row> held;
  private transient ValueState<byte[]> holdClock;

  public CustomerContextProcessor(StructType schema, long ttlMs) {
    this(schema, ttlMs, -1L);
  }

  /** {@code holdIdleMs < 0}: arrival order (no hold); else event-time order, see the class comment. */
  public CustomerContextProcessor(StructType schema, long ttlMs, long holdIdleMs) {
    this.schema = schema;
    this.holdIdleMs = holdIdleMs;
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
    if (holdIdleMs >= 0) {
      // no TTL: a held row leaves only by being emitted
      held = getHandle().getListState("held", Encoders.row(schema), TTLConfig.NONE());
      holdClock = getHandle().getValueState("hold_clock", Encoders.BINARY(), TTLConfig.NONE());
    }
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
    if (holdIdleMs < 0) {
      walk(batch, out, ctx);
      return CollectionConverters.asScala(out.iterator());
    }
    List<Row> pending = new ArrayList<>(batch);
    held.get().foreach(r -> pending.add(r));
    release(pending, timerValues, out, ctx);
    return CollectionConverters.asScala(out.iterator());
  }

  @Override
  public scala.collection.Iterator<Row> handleExpiredTimer(
      String key, TimerValues timerValues, ExpiredTimerInfo expiredTimerInfo) {
    List<Row> out = new ArrayList<>();
    if (holdIdleMs < 0 || !held.exists()) {
      return CollectionConverters.asScala(out.iterator());
    }
    List<Row> pending = new ArrayList<>();
    held.get().foreach(r -> pending.add(r));
    release(pending, timerValues, out, new double[Walks.CUSTOMER_CONTEXT_COLUMNS.length]);
    return CollectionConverters.asScala(out.iterator());
  }

  /** Walk and emit the pending rows the watermark has passed (all of them once it has stood still for
   * holdIdleMs), keep the rest with a timer for the next batch. */
  private void release(List<Row> pending, TimerValues tv, List<Row> out, double[] ctx) {
    long watermark = tv.getCurrentWatermarkInMs(); // -1 before the first batch with data
    long now = tv.getCurrentProcessingTimeInMs();
    java.nio.ByteBuffer clock =
        holdClock.exists() ? java.nio.ByteBuffer.wrap(holdClock.get()) : null;
    if (clock == null || watermark > clock.getLong(0)) {
      clock = java.nio.ByteBuffer.allocate(16).putLong(0, watermark).putLong(8, now);
    }
    boolean idle = now - clock.getLong(8) >= holdIdleMs;
    List<Row> ready = new ArrayList<>(pending.size());
    List<Row> rest = new ArrayList<>();
    for (Row r : pending) {
      if (idle || Math.floorDiv(Rows.epochNs(r.get(eventTs)), 1_000_000L) < watermark) {
        ready.add(r);
      } else {
        rest.add(r);
      }
    }
    walk(ready, out, ctx);
    if (rest.isEmpty()) {
      held.clear();
      holdClock.clear();
    } else {
      held.put(rest.toArray(new Row[0]));
      holdClock.update(clock.array());
      getHandle().registerTimer(now + 1);
    }
  }

  /** One customer's rows through its state in (event time, transaction id) order, each emitted with its
   * context. */
  private void walk(List<Row> batch, List<Row> out, double[] ctx) {
    if (batch.isEmpty()) {
      return;
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
  }
}
