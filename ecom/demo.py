"""`ecom demo`: the whole platform end to end on local defaults, resumable.

Steps (each one is the same command a user would run, so the demo exercises the real code paths):
  1. history   `ecom generate --days D --part head ...`    simulated months of shop history into Kafka
  2. land      `ecom land`                            Kafka -> append-only master dataset
  3. batch     `ecom batch`                                  dbt star schema + serving views via Dagster
  4. train     `ecom train`                                  Isolation Forest in MLflow, gated champion
  5. live      `ecom stream` (background) + `ecom generate ... --part tail --rate R`: the history's last
               days arrive at R events/s while the stream scores them
  6. refresh   `ecom land` + `ecom batch --job refresh_all`  every asset (dbt, analytics, retrain, checks)
  7. UIs       `ecom up --uis`: the dbt docs site, the GX Data Docs and the dashboards serve beside Dagster
               and MLflow (reused when already running)
  8. summary   events, alerts with reasons, segments, model metrics, URLs
A step that finished is recorded under .local/demo/ and skipped on the next run; every write in the
platform is idempotent (transaction ids are keys), so a re-run never duplicates data.

Why the live part is the history's tail and not the wall-clock generator (`ecom generate --rate R`): at
demo scale (thousands of customers, hundreds of events/s) the wall clock gives every customer a purchase
every few seconds, a velocity the model rightly calls fraud (63 % of live events alerted in a trial run).
The tail keeps each customer's real rhythm, so the alerts the summary shows are the model's, not the
simulator's compression. The shop's start date is fixed on the first run (.local/demo/start) so a
re-run regenerates exactly the same events.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from kernel.errors import EcomError
from kernel.settings import Settings, get_settings, service_env
from stack.services import kill_tree


def _stamp(settings: Settings, step: str) -> Path:
    return settings.state_dir / "demo" / f"{step}.done"


def _run(
    settings: Settings,
    title: str,
    argv: list[str],
    log: Path,
    tolerate: Callable[[bytes], str | None] | None = None,
) -> None:
    """Run `ecom ARGV`, its output into the log. `tolerate(stdout)` may accept a non-zero exit by returning
    a note to print (stdout is then captured for it, and still logged); otherwise a failure raises."""
    t0 = time.monotonic()
    print(f"==> {title}: ecom {' '.join(argv)}", flush=True)
    with open(log, "ab") as fh:
        proc = subprocess.run(
            [str(settings.venv_bin / "ecom"), *argv],
            env={**os.environ, **service_env(settings)},
            stdout=subprocess.PIPE if tolerate else fh,
            stderr=fh if tolerate else subprocess.STDOUT,
            cwd=settings.repo_root,
        )
        if tolerate:
            fh.write(proc.stdout)
    note = ""
    if proc.returncode != 0:
        note = tolerate(proc.stdout) if tolerate else None
        if not note:
            raise EcomError(f"step '{title}' failed (exit {proc.returncode}); see {log}")
    print(f"    done in {time.monotonic() - t0:.0f} s{note}", flush=True)


def champion_gate_only(batch_json: bytes) -> str | None:
    """For `ecom batch --json` output: a note when the only failed check is the retrained challenger's
    `beats_champion` gate (the gate working: the champion stays), else None (a real failure). Pure."""
    try:
        failed = {c.get("name") for c in json.loads(batch_json).get("failed_checks", [])}
    except (ValueError, AttributeError):
        return None
    if failed == {"beats_champion"}:
        return "; the retrained challenger did not beat the champion, which stays"
    return None


def _step(settings: Settings, name: str, title: str, argv: list[str], log: Path, force: bool) -> None:
    stamp = _stamp(settings, name)
    if stamp.exists() and not force:
        print(f"==> {title}: already done ({stamp.name}), skipping", flush=True)
        return
    _run(settings, title, argv, log)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(time.strftime("%Y-%m-%dT%H:%M:%S"))


def _live(settings: Settings, rate: int, shop: list[str], tail_days: float, log: Path) -> None:
    argv = ["generate", *shop, "--tail-days", f"{tail_days:g}", "--part", "tail", "--rate", str(rate)]
    print(f"==> live: ecom stream (background) + ecom {' '.join(argv)}", flush=True)
    env = {**os.environ, **service_env(settings)}
    with open(log, "ab") as fh:
        stream = subprocess.Popen(
            [str(settings.venv_bin / "ecom"), "stream"],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=settings.repo_root,
            start_new_session=True,
        )
    try:
        time.sleep(5)
        _run(settings, f"live events (last {tail_days:g} days at {rate} events/s)", [*argv, "--quiet"], log)
        # let the stream drain what was produced
        _wait_for_drain(settings, since=time.time(), timeout_s=900)
    finally:
        # the query's state is in its checkpoint: stopping the whole process tree (Python + Spark JVM) loses nothing
        kill_tree(stream.pid, timeout=60)


def _shop_start(settings: Settings, days: int) -> str:
    """The shop's first day, fixed on the first run so every later run simulates the same events."""
    path = settings.state_dir / "demo" / "start"
    if path.exists():
        return path.read_text().strip()
    from datetime import UTC, datetime, timedelta

    start = (datetime.now(UTC) - timedelta(days=days)).date().isoformat()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(start)
    return start


def _wait_for_drain(settings: Settings, since: float, timeout_s: float) -> None:
    """Wait until the speed query reports a batch committed after `since` with no Kafka lag left."""
    from kernel.db import connect

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with connect(settings) as conn:
            row = conn.execute(
                "SELECT kafka_lag FROM ops.stream_batches WHERE query_name = 'speed' "
                "AND committed_at > to_timestamp(%s) ORDER BY committed_at DESC LIMIT 1",
                (since,),
            ).fetchone()
        if row is not None and (row[0] or 0) == 0:
            return
        time.sleep(5)
    print(
        f"    the stream has not caught up after {timeout_s:.0f} s; continuing (it resumes on the next run)"
    )


# the champion's hold-out figures the summary shows: deployed_* are at the threshold it runs with;
# recall_at_fpr_2pct is the best case over every threshold (chosen in hindsight on the hold-out's labels)
CHAMPION_METRICS = (
    "roc_auc",
    "average_precision",
    "precision_at_k",
    "deployed_recall",
    "deployed_precision",
    "deployed_fpr",
    "deployed_threshold",
    "alert_rate",
    "recall_at_fpr_2pct",
)
SEED_DETECTION, SEED_MAX_FPR = 0.953, 0.02  # the seed project's headline: 95.3 % detection, < 2 % FP


def versus_seed(metrics: dict[str, float]) -> str:
    """The seed's "95.3 % detection, < 2 % FP" against the champion's figures at its deployed threshold."""
    recall, fpr = metrics.get("deployed_recall"), metrics.get("deployed_fpr")
    if recall is None or fpr is None:
        return "no deployed figures logged (a champion trained before they were); retrain: ecom train"
    met = recall >= SEED_DETECTION and fpr < SEED_MAX_FPR
    return (
        f"{'meets' if met else 'misses'} the seed's 95.3 % detection at < 2 % FP: at its deployed "
        f"threshold it catches {recall:.1%} of the hold-out's frauds at {fpr:.2%} false positives"
    )


def summary(settings: Settings) -> dict[str, object]:
    """What the platform holds now, read from Postgres and MLflow."""
    from kernel.db import connect

    out: dict[str, object] = {}
    with connect(settings) as conn:

        def scalar(sql: str):
            try:
                return conn.execute(sql).fetchone()[0]
            except Exception:
                conn.rollback()
                return None

        def rows(sql: str):
            try:
                return conn.execute(sql).fetchall()
            except Exception:
                conn.rollback()
                return []

        out["master_transactions"] = scalar("SELECT count(*) FROM master.transactions")
        out["chargebacks"] = scalar("SELECT count(*) FROM master.chargebacks")
        out["speed_scored"] = scalar("SELECT count(*) FROM speed.scored_transactions")
        out["alerts"] = scalar("SELECT count(*) FROM speed.fraud_alerts")
        out["quarantined"] = scalar("SELECT count(*) FROM quarantine.events")
        out["top_alerts"] = [
            {
                "transaction_id": r[0],
                "score": round(float(r[1]), 3),
                "model_version": r[2],
                "reasons": [x.get("text") for x in (r[3] or [])][:3],
            }
            for r in rows(
                "SELECT transaction_id, fraud_score, model_version, reasons FROM speed.fraud_alerts "
                "ORDER BY fraud_score DESC LIMIT 5"
            )
        ]
        out["segments"] = [
            {"segment": r[0], "customers": r[1]}
            for r in rows(
                "SELECT segment, count(*) FROM analytics.rfm_customers GROUP BY segment ORDER BY 2 DESC"
            )
        ]
        out["quality_score"] = scalar("SELECT score FROM quality.scores ORDER BY run_at DESC LIMIT 1")
    try:
        from mlflow import MlflowClient

        client = MlflowClient(settings.mlflow.tracking_uri)
        mv = client.get_model_version_by_alias(settings.mlflow.model_name, settings.mlflow.champion_alias)
        run = client.get_run(mv.run_id)
        metrics = {k: round(v, 4) for k, v in run.data.metrics.items() if k in CHAMPION_METRICS}
        out["champion"] = {"version": mv.version, "metrics": metrics, "vs_seed": versus_seed(metrics)}
    except Exception as exc:  # the summary reports what is there; it never fails the demo
        out["champion"] = f"unavailable ({type(exc).__name__})"
    out["urls"] = urls(settings)
    return out


def urls(settings: Settings) -> dict[str, str]:
    """Every UI the demo leaves serving (stack/services.py starts them), and the database."""
    from stack.services import ui_services

    ui = {svc.name.replace("-", "_"): svc.url for svc in ui_services(settings)}
    return {
        "dagster": settings.dagster.url,
        "mlflow": settings.mlflow.tracking_uri,
        **ui,
        "postgres": f"postgresql://{settings.postgres.user}@{settings.postgres.host}:{settings.postgres.port}/"
        f"{settings.postgres.db}",
    }


def _serve_uis(settings: Settings, log: Path) -> None:
    """Leave every UI serving: the dbt docs site, the GX Data Docs and the dashboards (reused when running).
    A running dbt docs site serves files from disk, so regenerating them shows the tables just rebuilt; the
    Data Docs were rebuilt by the quality checks of the refresh; the dashboards query live."""
    from stack.services import ui_services, up_uis

    if any(svc.name == "dbt-docs" and svc.running() for svc in ui_services(settings)):
        _run(settings, "refresh the dbt docs site", ["docs", "--no-serve"], log)
    t0 = time.monotonic()
    print("==> UIs: dbt docs, Data Docs, dashboards (ecom up --uis)", flush=True)
    statuses = up_uis(settings, progress=lambda msg: print(f"    {msg}", flush=True))
    print(
        f"    all serving in {time.monotonic() - t0:.0f} s ({', '.join(str(st['url']) for st in statuses)})"
    )


def _print_summary(s: dict[str, object]) -> None:
    print("\n==================== ecom-lambda demo summary ====================")
    for key in (
        "master_transactions",
        "chargebacks",
        "speed_scored",
        "alerts",
        "quarantined",
        "quality_score",
    ):
        print(f"  {key:<22} {s.get(key)}")
    champion = s.get("champion")
    if isinstance(champion, dict):
        m = champion["metrics"]
        print(f"  champion               v{champion['version']} (hold-out, labels as known at the time)")
        for k in (
            "deployed_recall",
            "deployed_precision",
            "deployed_fpr",
            "deployed_threshold",
            "alert_rate",
        ):
            print(f"    {k:<22} {m.get(k)}")
        for k in ("roc_auc", "average_precision", "precision_at_k"):
            print(f"    {k:<22} {m.get(k)}")
        print(f"    {'recall_at_fpr_2pct':<22} {m.get('recall_at_fpr_2pct')} (best case over all thresholds)")
        print(f"    vs seed                {champion['vs_seed']}")
    else:
        print(f"  champion               {champion}")
    print("  top alerts:")
    for a in s.get("top_alerts") or []:
        print(
            f"    {a['transaction_id']}  score={a['score']}  v{a['model_version']}  {'; '.join(a['reasons'])}"
        )
    print("  RFM segments:")
    for seg in s.get("segments") or []:
        print(f"    {seg['segment']:<22} {seg['customers']}")
    print("  UIs:")
    for name, url in (s.get("urls") or {}).items():
        print(f"    {name:<11} {url}")


def run_demo(args: argparse.Namespace) -> int:
    s = get_settings()
    log = s.logs_dir / "demo.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"(full output of every step: {log})")
    f = args.force
    if not 0 <= args.tail_days < args.days:
        raise EcomError(f"--tail-days must be >= 0 and below --days ({args.days})")
    shop = [
        "--days",
        str(args.days),
        "--start",
        _shop_start(s, args.days),
        "--customers",
        str(args.customers),
        "--seed",
        str(args.seed),
    ]
    head = ["--tail-days", f"{args.tail_days:g}", "--part", "head"] if args.tail_days else []
    _step(
        s,
        "history",
        f"load {args.days - args.tail_days:g} of {args.days} days of shop history",
        ["generate", *shop, *head, "--quiet"],
        log,
        f,
    )
    _step(s, "land-history", "land the history into the master dataset", ["land"], log, f)
    _step(s, "batch-history", "build the batch layer (dbt via Dagster)", ["batch"], log, f)
    _step(s, "train", "train the first champion", ["train"], log, f)
    if args.tail_days > 0:
        live = _stamp(s, "live")
        if live.exists() and not f:
            print(f"==> live: already done ({live.name}), skipping", flush=True)
        else:
            _live(s, args.rate, shop, args.tail_days, log)
            live.write_text(time.strftime("%Y-%m-%dT%H:%M:%S"))
        _run(s, "land live events", ["land"], log)
        _run(
            s,
            "refresh every asset",
            ["batch", "--job", "refresh_all", "--json"],
            log,
            tolerate=champion_gate_only,
        )
    _serve_uis(s, log)
    result = summary(s)
    if args.json:
        print(json.dumps(result, default=str))
    else:
        _print_summary(result)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="run the platform end to end on local defaults (resumable)")
    p.add_argument("--days", type=int, default=90, help="days of simulated history (default 90)")
    p.add_argument("--customers", type=int, default=20000, help="simulated customers (default 20000)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--tail-days",
        type=float,
        default=14,
        help="the history's last days arrive live while the stream runs (default 14; 0 = no live part)",
    )
    p.add_argument("--rate", type=int, default=200, help="live events/s of that tail (default 200)")
    p.add_argument("--force", action="store_true", help="redo steps already recorded as done")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run_demo)
