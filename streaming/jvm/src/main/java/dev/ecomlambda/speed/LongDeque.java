package dev.ecomlambda.speed;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.util.Arrays;

/** A growable ring of longs: the collections.deque of ml/features.py's walk (times, cents). */
final class LongDeque {
  private long[] items = new long[8];
  private int head;
  private int size;

  int size() {
    return size;
  }

  boolean isEmpty() {
    return size == 0;
  }

  long first() {
    return items[head];
  }

  long get(int i) {
    return items[(head + i) & (items.length - 1)];
  }

  void addLast(long v) {
    if (size == items.length) {
      long[] grown = new long[items.length * 2];
      for (int i = 0; i < size; i++) {
        grown[i] = get(i);
      }
      items = grown;
      head = 0;
    }
    items[(head + size) & (items.length - 1)] = v;
    size++;
  }

  long removeFirst() {
    long v = items[head];
    head = (head + 1) & (items.length - 1);
    size--;
    return v;
  }

  void write(DataOutputStream out) throws IOException {
    out.writeInt(size);
    for (int i = 0; i < size; i++) {
      out.writeLong(get(i));
    }
  }

  static LongDeque read(DataInputStream in) throws IOException {
    LongDeque d = new LongDeque();
    int n = in.readInt();
    for (int i = 0; i < n; i++) {
      d.addLast(in.readLong());
    }
    return d;
  }

  @Override
  public String toString() {
    long[] copy = new long[size];
    for (int i = 0; i < size; i++) {
      copy[i] = get(i);
    }
    return Arrays.toString(copy);
  }
}
