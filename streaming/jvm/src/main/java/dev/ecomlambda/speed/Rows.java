package dev.ecomlambda.speed;

import java.sql.Timestamp;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

/** Row adapters shared by the processors and the scorer (Spark values -> the walks' plain values). */
final class Rows {
  static final String REJECTED_KEY = "__rejected__";

  private Rows() {}

  static StructType withDoubles(StructType schema, String[] columns) {
    List<StructField> fields = new ArrayList<>(Arrays.asList(schema.fields()));
    for (String c : columns) {
      fields.add(DataTypes.createStructField(c, DataTypes.DoubleType, true));
    }
    return DataTypes.createStructType(fields);
  }

  /** The row's values followed by {@code extra} (NaN becomes NULL, as pandas' NaN does in Spark). */
  static Row append(Row row, double[] extra) {
    int n = row.length();
    Object[] values = new Object[n + extra.length];
    for (int i = 0; i < n; i++) {
      values[i] = row.get(i);
    }
    for (int j = 0; j < extra.length; j++) {
      values[n + j] = Double.isNaN(extra[j]) ? null : extra[j];
    }
    return RowFactory.create(values);
  }

  /** Event time in integer nanoseconds since the epoch (Spark timestamps are whole microseconds). */
  static long epochNs(Object value) {
    if (value instanceof Timestamp ts) {
      return Math.floorDiv(ts.getTime(), 1000L) * 1_000_000_000L + ts.getNanos();
    }
    if (value instanceof Instant in) {
      return in.getEpochSecond() * 1_000_000_000L + in.getNano();
    }
    throw new IllegalArgumentException("event_ts must be a timestamp, got " + value);
  }

  static double toDouble(Object value) {
    return value == null ? Double.NaN : ((Number) value).doubleValue();
  }

  /** pandas' astype(str) of an id: None becomes "None" (what the Python walk keys by). */
  static String str(Object value) {
    return value == null ? "None" : value.toString();
  }

  static String orEmpty(Object value) {
    return value == null ? "" : value.toString();
  }
}
