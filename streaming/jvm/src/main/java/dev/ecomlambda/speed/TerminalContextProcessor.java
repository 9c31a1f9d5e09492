package dev.ecomlambda.speed;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.streaming.OutputMode;
import org.apache.spark.sql.streaming.StatefulProcessor;
import org.apache.spark.sql.streaming.TimeMode;
import org.apache.spark.sql.streaming.TimerValues;
import org.apache.spark.sql.streaming.ValueState;
import org.apache.spark.sql.types.StructType;
import scala.jdk.javaapi.CollectionConverters;

/**
 * transformWithState keyed by terminal_id: appends TERMINAL_CONTEXT_COLUMNS (ml.features.terminal_context)
 * to rows that already carry cust_home_distance_km (the customer processor runs first, as in the Python
 * stream). Same ordering, pass-through of rejected rows and TTL as {@link CustomerContextProcessor}.
 */
public final class TerminalContextProcessor extends StatefulProcessor<String, Row, Row> {
  private static final long serialVersionUID = 1L;
  private final long ttlMs;
  private final int txId;
  private final int eventTs;
  private final int amount;
  private final int homeDistance;
  private transient ValueState<byte[]> state;

  public TerminalContextProcessor(StructType schema, long ttlMs) {
    this.ttlMs = ttlMs;
    this.txId = schema.fieldIndex("transaction_id");
    this.eventTs = schema.fieldIndex("event_ts");
    this.amount = schema.fieldIndex("amount");
    this.homeDistance = schema.fieldIndex("cust_home_distance_km");
  }

  @Override
  public void init(OutputMode outputMode, TimeMode timeMode) {
    state =
        getHandle()
            .getValueState("terminal", Encoders.BINARY(), CustomerContextProcessor.ttl(ttlMs));
  }

  @Override
  public scala.collection.Iterator<Row> handleInputRows(
      String key, scala.collection.Iterator<Row> rows, TimerValues timerValues) {
    List<Row> batch = new ArrayList<>();
    rows.foreach(batch::add);
    List<Row> out = new ArrayList<>(batch.size());
    double[] ctx = new double[Walks.TERMINAL_CONTEXT_COLUMNS.length];
    if (Rows.REJECTED_KEY.equals(key)) {
      java.util.Arrays.fill(ctx, Double.NaN);
      for (Row r : batch) {
        out.add(Rows.append(r, ctx));
      }
      return CollectionConverters.asScala(out.iterator());
    }
    byte[] raw = state.exists() ? state.get() : null;
    Walks.TerminalState st = raw == null ? new Walks.TerminalState() : Walks.TerminalState.fromBytes(raw);
    long[] t = new long[batch.size()];
    Integer[] order = new Integer[batch.size()];
    for (int i = 0; i < order.length; i++) {
      order[i] = i;
      t[i] = Rows.epochNs(batch.get(i).get(eventTs));
    }
    java.util.Arrays.sort(
        order,
        Comparator.<Integer>comparingLong(i -> t[i])
            .thenComparing(i -> Rows.str(batch.get(i).get(txId))));
    for (int i : order) {
      Row r = batch.get(i);
      Walks.terminalStep(
          st,
          t[i],
          Walks.cents(Rows.toDouble(r.get(amount))),
          Walks.isFar(Rows.toDouble(r.get(homeDistance))),
          ctx);
      out.add(Rows.append(r, ctx));
    }
    state.update(st.toBytes());
    return CollectionConverters.asScala(out.iterator());
  }
}
