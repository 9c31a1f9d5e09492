"""A broken row fails its dbt test, Dagster records the failed check, what depends on it is not built, and
`ecom batch` exits non-zero.

Runs in a throwaway database (the master dataset is append-only: a bad row in the shared one would stay
forever) and on a throwaway Dagster instance (so the shared UI does not show this test's failed checks).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from kernel.settings import get_settings
from orchestration.scratch import scratch_database
from orchestration.synthetic import SyntheticSpec, insert_reference, insert_transactions

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def test_ecom_batch_exits_non_zero_when_a_check_fails(stack, tmp_path) -> None:
    name = f"ecom_batchfail_{uuid.uuid4().hex[:8]}"
    spec = SyntheticSpec(prefix="f-", topic="fixture-fail", n_customers=50, n_merchants=5, n_products=40)
    with scratch_database(name) as scratch:
        from kernel import db

        with db.connect(scratch) as conn:
            insert_reference(conn, spec)
            insert_transactions(conn, spec, 0, 199)
            # a payment method the contract does not know, as if something wrote past the stream's validation
            conn.execute(
                """
                INSERT INTO master.transactions
                SELECT 'f-bad-1', schema_version, customer_id, merchant_id, terminal_id, event_time, currency,
                       amount, 'barter', channel, device_id, device_type, ip_address, ip_country, ip_city, ip_lat,
                       ip_lon, line_items, kafka_topic, kafka_partition, kafka_offset + 1000000, kafka_timestamp
                FROM master.transactions WHERE kafka_topic = 'fixture-fail' AND kafka_offset = 0 LIMIT 1
                """
            )
            conn.commit()
        s = get_settings()
        env = {
            **os.environ,
            "ECOM_PG_DB": name,
            "DAGSTER_HOME": str(tmp_path),  # empty: an ephemeral local instance
        }
        out = subprocess.run(
            [str(s.venv_bin / "ecom"), "batch", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        with db.connect(scratch) as conn:
            recorded = conn.execute("SELECT source FROM ops.batch_source_marks").fetchall()
    # a failed build records no source as built: the next increment selects everything again
    assert recorded == []
    assert out.returncode == 1, out.stdout[-2000:] + out.stderr[-2000:]
    report = json.loads(out.stdout)
    failed = {(c["asset"], c["name"].split("___")[0]) for c in report["failed_checks"]}
    assert (
        "staging/stg_master__transactions",
        "accepted_values_stg_master__transactions_payment_method",
    ) in failed
    # dbt build skips what depends on a failed test: the bad row never reaches the star or the serving layer
    assert "staging/stg_master__transactions" in report["materialized"]
    assert "marts/fct_transactions" not in report["materialized"]
    assert "serving/transactions" not in report["materialized"]
