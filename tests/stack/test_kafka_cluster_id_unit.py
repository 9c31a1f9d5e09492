"""The KRaft cluster id handed to Kafka's storage tool never starts with "-" (its parser would take it for
an option and the broker would not format: seen once in CI, 1 in 64 formats)."""

from __future__ import annotations

import uuid

from stack import services as stack


def test_a_cluster_id_starting_with_a_dash_is_drawn_again(monkeypatch):
    dashed = uuid.UUID(bytes=b"\xf8" + bytes(15))  # base64 of 0b111110.. starts with "-"
    plain = uuid.UUID(bytes=bytes(16))
    draws = iter([dashed, plain])
    monkeypatch.setattr(stack.uuid, "uuid4", lambda: next(draws))
    assert stack.base64.urlsafe_b64encode(dashed.bytes).decode().startswith("-")
    cluster_id = stack._kafka_cluster_id()
    assert cluster_id == "AAAAAAAAAAAAAAAAAAAAAA"
    assert not cluster_id.startswith("-")
