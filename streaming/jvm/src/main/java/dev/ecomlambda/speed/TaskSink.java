package dev.ecomlambda.speed;

import java.io.Serializable;
import java.io.StringReader;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.sql.Array;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.logging.Logger;
import org.apache.spark.api.java.function.MapPartitionsFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.postgresql.PGConnection;

/**
 * The JVM twin of streaming.speed.query.write_scored_partition + streaming.sink.PartitionWriter: each Spark
 * task writes its own scored rows (speed.scored_transactions, the alerts of stored rows, quarantine) in ONE
 * Postgres transaction of its own, per table COPY into a temp table + INSERT ... ON CONFLICT DO NOTHING
 * (kernel.db.copy_insert), and hands the driver one row of its counts (streaming.sink.TASK_COUNTS_SCHEMA),
 * never its rows. "written" counts the rows stored for THIS batch (transaction_id + batch_id), also those an
 * earlier attempt of the batch inserted, as TableWrite.stored_by does. Postgres unreachable: the transaction
 * is retried with exponential backoff (streaming.sink.retrying), then the task fails and Spark's replay
 * redoes the batch. The driver writes the batch marker after every task succeeded (streaming/sink.py).
 */
public final class TaskSink implements Serializable {
  private static final long serialVersionUID = 1L;
  private static final Logger LOG = Logger.getLogger(TaskSink.class.getName());

  /** streaming.speed.scoring.SPEED_COLUMNS + batch_id, and where each comes from in the scored row. */
  static final String[] SCORED_COLUMNS = {
    "transaction_id", "customer_id", "merchant_id", "terminal_id", "event_time", "currency", "amount",
    "payment_method", "channel", "device_type", "ip_country", "n_items", "fraud_score", "is_alert",
    "model_version", "kafka_partition", "kafka_offset", "kafka_timestamp", "batch_id",
  };

  static final String[] ALERT_COLUMNS = {
    "transaction_id", "customer_id", "event_time", "amount", "fraud_score", "threshold", "model_version",
    "reasons",
  };
  static final String[] QUARANTINE_COLUMNS = {
    "source", "kafka_topic", "kafka_partition", "kafka_offset", "raw_payload", "raw_text", "reason",
  };
  // streaming.speed.query.ALERT_OF_STORED_ROW, streaming.sink.QUARANTINE_CONFLICT
  static final String ALERT_OF_STORED_ROW =
      "EXISTS (SELECT 1 FROM speed.scored_transactions s "
          + "WHERE s.transaction_id = t.transaction_id AND s.is_alert AND s.model_version = t.model_version)";
  static final String QUARANTINE_CONFLICT =
      "(source, kafka_topic, kafka_partition, kafka_offset) WHERE kafka_offset IS NOT NULL";

  /** streaming.sink.TASK_COUNTS_SCHEMA. */
  public static final StructType COUNTS_SCHEMA =
      new StructType()
          .add("rows_in", DataTypes.LongType)
          .add("rows_written", DataTypes.LongType)
          .add("rows_quarantined", DataTypes.LongType)
          .add("alerts", DataTypes.LongType)
          .add("write_ms", DataTypes.DoubleType)
          .add("kafka_partitions", DataTypes.createArrayType(DataTypes.IntegerType))
          .add("kafka_ends", DataTypes.createArrayType(DataTypes.LongType))
          .add("latency_ms", DataTypes.createArrayType(DataTypes.LongType))
          .add("latency_counts", DataTypes.createArrayType(DataTypes.LongType));

  /** The columns this sink writes to {@code table} (the tests compare them with query.speed_writes). */
  public static String[] columns(String table) {
    return switch (table) {
      case "speed.scored_transactions" -> SCORED_COLUMNS.clone();
      case "speed.fraud_alerts" -> ALERT_COLUMNS.clone();
      case "quarantine.events" -> QUARANTINE_COLUMNS.clone();
      default -> throw new IllegalArgumentException("the task sink does not write " + table);
    };
  }

  private static final Map<String, ConcurrentLinkedQueue<Connection>> IDLE = new ConcurrentHashMap<>();

  final String url;
  final String user;
  final String password;
  final int maxAttempts;
  final double firstBackoffS;
  final double maxBackoffS;

  public TaskSink(String url, String user, String password, int maxAttempts, double firstBackoffS, double maxBackoffS) {
    this.url = url;
    this.user = user;
    this.password = password;
    this.maxAttempts = maxAttempts;
    this.firstBackoffS = firstBackoffS;
    this.maxBackoffS = maxBackoffS;
  }

  /**
   * One batch's tasks: {@code scored} is SpeedJvm.scoreInContext's output (rejected rows included); with
   * {@code sink} null (the benchmark's no-op sink) nothing is written and the counts say what would be.
   */
  public static Dataset<Row> writeScored(
      Dataset<Row> scored, TaskSink sink, long batchId, String modelVersion, double threshold) {
    Columns cols = new Columns(scored.schema());
    return scored.mapPartitions(
        (MapPartitionsFunction<Row, Row>) rows -> List.of(writePartition(rows, cols, sink, batchId, modelVersion, threshold)).iterator(),
        Encoders.row(COUNTS_SCHEMA));
  }

  /** Positions of what the sink reads in the scored rows. */
  static final class Columns implements Serializable {
    private static final long serialVersionUID = 1L;
    final int txId, customer, merchant, terminal, eventTs, currency, amount, payment, channel, device,
        country, nItems, score, alert, reasons, topic, partition, offset, kafkaTs, raw, reject;

    Columns(StructType s) {
      txId = s.fieldIndex("transaction_id");
      customer = s.fieldIndex("customer_id");
      merchant = s.fieldIndex("merchant_id");
      terminal = s.fieldIndex("terminal_id");
      eventTs = s.fieldIndex("event_ts");
      currency = s.fieldIndex("currency");
      amount = s.fieldIndex("amount");
      payment = s.fieldIndex("payment_method");
      channel = s.fieldIndex("channel");
      device = s.fieldIndex("device_type");
      country = s.fieldIndex("ip_country");
      nItems = s.fieldIndex("n_items");
      score = s.fieldIndex("fraud_score");
      alert = s.fieldIndex("is_alert");
      reasons = s.fieldIndex("reasons");
      topic = s.fieldIndex("kafka_topic");
      partition = s.fieldIndex("kafka_partition");
      offset = s.fieldIndex("kafka_offset");
      kafkaTs = s.fieldIndex("kafka_timestamp");
      raw = s.fieldIndex("raw_payload");
      reject = s.fieldIndex("reject_reason");
    }
  }

  /** One table's rows as a CSV block (COPY ... WITH (FORMAT csv)) plus the keys that say "stored by us". */
  static final class Block {
    final StringBuilder csv = new StringBuilder();
    int rows;
    final List<List<Object>> keys = new ArrayList<>();
  }

  static Row writePartition(
      Iterator<Row> rows, Columns c, TaskSink sink, long batchId, String modelVersion, double threshold)
      throws SQLException, InterruptedException {
    long t0 = System.nanoTime();
    Block scored = new Block();
    Block alerts = new Block();
    Block quarantine = new Block();
    TreeMap<Integer, Long> ends = new TreeMap<>();
    List<Long> kafkaUs = new ArrayList<>();
    long rowsIn = 0;
    String version = modelVersion;
    while (rows.hasNext()) {
      Row r = rows.next();
      rowsIn++;
      int partition = ((Number) r.get(c.partition)).intValue();
      long offset = ((Number) r.get(c.offset)).longValue();
      ends.merge(partition, offset + 1, Math::max);
      kafkaUs.add(Math.floorDiv(Rows.epochNs(r.get(c.kafkaTs)), 1000L));
      String topic = (String) r.get(c.topic);
      if (!r.isNullAt(c.reject)) {
        byte[] raw = r.isNullAt(c.raw) ? new byte[0] : (byte[]) r.get(c.raw);
        row(quarantine.csv, "stream", topic, partition, offset, raw, utf8(raw), r.get(c.reject));
        quarantine.rows++;
        quarantine.keys.add(List.of("stream", topic, partition, offset));
        continue;
      }
      String id = (String) r.get(c.txId);
      String eventTime = instant(r.get(c.eventTs));
      double amount = Rows.toDouble(r.get(c.amount));
      double nItems = Rows.toDouble(r.get(c.nItems));
      int items = (int) Math.rint(Double.isNaN(nItems) ? 1.0 : nItems);
      double score = Rows.toDouble(r.get(c.score));
      boolean alert = Boolean.TRUE.equals(r.get(c.alert));
      row(
          scored.csv,
          id,
          r.get(c.customer),
          r.get(c.merchant),
          r.get(c.terminal),
          eventTime,
          r.get(c.currency),
          amount,
          r.get(c.payment),
          r.get(c.channel),
          r.get(c.device),
          r.get(c.country),
          items,
          score,
          alert,
          version,
          partition,
          offset,
          instant(r.get(c.kafkaTs)),
          batchId);
      scored.rows++;
      scored.keys.add(List.of(id, batchId));
      if (alert) {
        row(alerts.csv, id, r.get(c.customer), eventTime, amount, score, threshold, version, r.get(c.reasons));
        alerts.rows++;
      }
    }
    long[] written = sink == null ? new long[] {0, alerts.rows, 0} : sink.write(scored, alerts, quarantine);
    double writeMs = (System.nanoTime() - t0) / 1e6;
    Instant now = Instant.now();
    double nowMs = now.getEpochSecond() * 1000.0 + now.getNano() / 1e6;
    TreeMap<Long, Long> histogram = new TreeMap<>();
    for (long us : kafkaUs) {
      histogram.merge((long) Math.rint(nowMs - us / 1000.0), 1L, Long::sum);
    }
    return RowFactory.create(
        rowsIn,
        written[0],
        written[2],
        written[1],
        writeMs,
        ends.keySet().toArray(new Integer[0]),
        ends.values().toArray(new Long[0]),
        histogram.keySet().toArray(new Long[0]),
        histogram.values().toArray(new Long[0]));
  }

  /** (scored, alerts, quarantined) rows stored, in one transaction, retried while Postgres is away. */
  long[] write(Block scored, Block alerts, Block quarantine) throws SQLException, InterruptedException {
    double delay = firstBackoffS;
    for (int attempt = 1; ; attempt++) {
      Connection conn = null;
      try {
        conn = take();
        long s = copyInsert(conn, "speed.scored_transactions", SCORED_COLUMNS, scored, "(transaction_id)", null);
        if (s < scored.rows) {
          s = stored(conn, "speed.scored_transactions", "transaction_id, batch_id", "text[], bigint[]", scored);
        }
        long a = copyInsert(conn, "speed.fraud_alerts", ALERT_COLUMNS, alerts, "(transaction_id)", ALERT_OF_STORED_ROW);
        long q = copyInsert(conn, "quarantine.events", QUARANTINE_COLUMNS, quarantine, QUARANTINE_CONFLICT, null);
        if (q < quarantine.rows) {
          q =
              stored(
                  conn,
                  "quarantine.events",
                  "source, kafka_topic, kafka_partition, kafka_offset",
                  "text[], text[], integer[], bigint[]",
                  quarantine);
        }
        conn.commit();
        give(conn);
        return new long[] {s, a, q};
      } catch (SQLException exc) {
        if (conn != null) {
          try {
            conn.close(); // a failed transaction's connection is not reused (rolled back on close)
          } catch (SQLException ignored) {
            // already gone
          }
        }
        if (!unavailable(exc) || attempt >= maxAttempts) {
          throw exc;
        }
        LOG.warning(
            String.format(
                "sink task: Postgres unavailable (%s); retry %d/%d in %.1fs",
                firstLine(exc), attempt, maxAttempts - 1, delay));
        Thread.sleep((long) (delay * 1000));
        delay = Math.min(maxBackoffS, delay * 2);
      }
    }
  }

  /** psycopg.OperationalError's cases: no connection, the server going away, too many clients. */
  static boolean unavailable(SQLException exc) {
    String state = exc.getSQLState();
    return state == null
        || state.startsWith("08")
        || state.startsWith("57P")
        || state.startsWith("53");
  }

  private static String firstLine(SQLException exc) {
    String m = String.valueOf(exc.getMessage()).strip();
    int nl = m.indexOf('\n');
    return nl < 0 ? m : m.substring(0, nl);
  }

  private Connection take() throws SQLException {
    Connection conn = IDLE.computeIfAbsent(key(), k -> new ConcurrentLinkedQueue<>()).poll();
    while (conn != null && conn.isClosed()) {
      conn = IDLE.get(key()).poll();
    }
    if (conn == null) {
      Properties props = new Properties();
      props.setProperty("user", user);
      props.setProperty("password", password);
      props.setProperty("connectTimeout", "5");
      props.setProperty("ApplicationName", "ecom-speed-sink");
      conn = DriverManager.getConnection(url, props);
      conn.setAutoCommit(false);
    }
    return conn;
  }

  private void give(Connection conn) {
    IDLE.computeIfAbsent(key(), k -> new ConcurrentLinkedQueue<>()).add(conn);
  }

  private String key() {
    return url + "|" + user;
  }

  /** kernel.db.copy_insert: COPY into a temp copy of the table's columns, then insert the new rows. */
  static long copyInsert(
      Connection conn, String table, String[] columns, Block rows, String conflict, String where)
      throws SQLException {
    if (rows.rows == 0) {
      return 0;
    }
    String tmp = "tmp_" + table.replace('.', '_');
    String cols = String.join(", ", columns);
    try (Statement st = conn.createStatement()) {
      st.execute("DROP TABLE IF EXISTS " + tmp);
      st.execute("CREATE TEMP TABLE " + tmp + " ON COMMIT DROP AS SELECT " + cols + " FROM " + table + " WITH NO DATA");
    }
    try {
      conn.unwrap(PGConnection.class)
          .getCopyAPI()
          .copyIn("COPY " + tmp + " (" + cols + ") FROM STDIN WITH (FORMAT csv)", new StringReader(rows.csv.toString()));
    } catch (java.io.IOException exc) {
      throw new SQLException("COPY into " + table + " failed: " + exc.getMessage(), "08006", exc);
    }
    try (Statement st = conn.createStatement()) {
      return st.executeUpdate(
          "INSERT INTO " + table + " (" + cols + ") SELECT " + cols + " FROM " + tmp + " t"
              + (where == null ? "" : " WHERE " + where)
              + " ON CONFLICT " + conflict + " DO NOTHING");
    }
  }

  /** streaming.sink._stored_count: how many of the rows are stored with the same key values. */
  static long stored(Connection conn, String table, String keyCols, String types, Block rows)
      throws SQLException {
    String[] t = types.split(",\\s*");
    StringBuilder unnest = new StringBuilder();
    for (int i = 0; i < t.length; i++) {
      unnest.append(i == 0 ? "" : ", ").append("?::").append(t[i]);
    }
    String sql =
        "SELECT count(*) FROM " + table + " WHERE (" + keyCols + ") IN (SELECT * FROM unnest(" + unnest
            + ") AS r(" + keyCols + "))";
    try (PreparedStatement ps = conn.prepareStatement(sql)) {
      for (int i = 0; i < t.length; i++) {
        String base = t[i].replace("[]", "");
        Object[] values = new Object[rows.keys.size()];
        for (int k = 0; k < values.length; k++) {
          values[k] = rows.keys.get(k).get(i);
        }
        Array arr = conn.createArrayOf(base.equals("text") ? "text" : base.equals("integer") ? "int4" : "int8", values);
        ps.setArray(i + 1, arr);
      }
      try (ResultSet rs = ps.executeQuery()) {
        rs.next();
        return rs.getLong(1);
      }
    }
  }

  // ------------------------------------------------------------------ CSV (COPY ... FORMAT csv)

  /** One CSV line: NULL unquoted empty, strings quoted, bytes as bytea hex, doubles round-tripping. */
  static void row(StringBuilder out, Object... values) {
    for (int i = 0; i < values.length; i++) {
      if (i > 0) {
        out.append(',');
      }
      Object v = values[i];
      if (v == null) {
        continue;
      }
      if (v instanceof byte[] b) {
        out.append("\"\\x");
        for (byte x : b) {
          out.append(Character.forDigit((x >> 4) & 0xF, 16)).append(Character.forDigit(x & 0xF, 16));
        }
        out.append('"');
      } else if (v instanceof Double d) {
        if (!d.isNaN()) {
          out.append(d.isInfinite() ? (d > 0 ? "Infinity" : "-Infinity") : Double.toString(d));
        }
      } else if (v instanceof Boolean b) {
        out.append(b ? 't' : 'f');
      } else if (v instanceof Number) {
        out.append(v);
      } else {
        String s = v.toString();
        out.append('"');
        for (int k = 0; k < s.length(); k++) {
          char ch = s.charAt(k);
          if (ch == '"') {
            out.append('"');
          }
          out.append(ch);
        }
        out.append('"');
      }
    }
    out.append('\n');
  }

  /** A Spark timestamp as an ISO instant (UTC) that timestamptz reads exactly. */
  static String instant(Object ts) {
    long ns = Rows.epochNs(ts);
    return Instant.ofEpochSecond(Math.floorDiv(ns, 1_000_000_000L), Math.floorMod(ns, 1_000_000_000L)).toString();
  }

  /** streaming.sink.quarantine_rows: the payload as text only if it is valid UTF-8 (NUL removed). */
  static String utf8(byte[] raw) {
    try {
      return StandardCharsets.UTF_8
          .newDecoder()
          .onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT)
          .decode(ByteBuffer.wrap(raw))
          .toString()
          .replace("\u0000", "");
    } catch (CharacterCodingException exc) {
      return null;
    }
  }
}
