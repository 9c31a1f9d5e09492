package dev.ecomlambda.speed;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;

/**
 * Events of one key inside a sliding event-time window with an exact running count and cent sum: the twin
 * of ml.features._Window (same expiry rule: drop from the front while the oldest time <= t - window, so a
 * late event in a later batch sees exactly what the Python walk sees).
 */
final class TimeWindow {
  final long seconds;
  final LongDeque times;
  final LongDeque cents;
  long total;

  TimeWindow(long seconds) {
    this(seconds, new LongDeque(), new LongDeque());
  }

  private TimeWindow(long seconds, LongDeque times, LongDeque cents) {
    this.seconds = seconds;
    this.times = times;
    this.cents = cents;
    for (int i = 0; i < cents.size(); i++) {
      total += cents.get(i);
    }
  }

  void expire(long tNs) {
    long horizon = tNs - seconds * Walks.NS;
    while (!times.isEmpty() && times.first() <= horizon) {
      times.removeFirst();
      total -= cents.removeFirst();
    }
  }

  void add(long tNs, long c) {
    times.addLast(tNs);
    cents.addLast(c);
    total += c;
  }

  int count() {
    return times.size();
  }

  void write(DataOutputStream out) throws IOException {
    times.write(out);
    cents.write(out);
  }

  static TimeWindow read(long seconds, DataInputStream in) throws IOException {
    return new TimeWindow(seconds, LongDeque.read(in), LongDeque.read(in));
  }
}
