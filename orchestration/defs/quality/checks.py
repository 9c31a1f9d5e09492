"""Great Expectations suites as blocking Dagster asset checks (GX 1.x called directly, no dagster-ge).

One check per suite, attached to the asset the suite guards. Every check is declared `blocking=True`;
the *severity* of its result decides: a failed critical expectation gives ERROR, which stops the assets
downstream in the same run; failed warnings only give WARN (recorded, visible, non-blocking). A suite
whose table does not exist yet reports WARN with the missing relations. Each execution stores every
expectation result in quality.expectation_results under the Dagster run id, and rebuilds the Data Docs.
"""

import dagster as dg  # no `from __future__ import annotations`: Dagster inspects the context type hint

from expectations.catalog import suite_assets
from kernel.settings import get_settings
from orchestration.defs.quality.resources import QualityResource
from orchestration.resources import PostgresResource, settings_for

CHECK_PREFIX = "gx_"


def check_result(outcome) -> dg.AssetCheckResult:  # outcome: expectations.runner.SuiteOutcome
    """The Dagster verdict of one suite run: ERROR when a critical expectation failed, else WARN/pass."""
    failed = [
        {"expectation": r.label, "severity": r.severity, "observed": r.observed_value, "what": r.description}
        for r in outcome.failed
    ]
    metadata = {
        "suite": outcome.name,
        "relation": outcome.relation,
        "status": outcome.status,
        "evaluated": len(outcome.rows),
        "failed": len(failed),
        "failed_expectations": dg.MetadataValue.json(failed),
        "score": float(outcome.score) if outcome.score is not None else None,
    }
    if outcome.missing:
        metadata["missing_relations"] = ", ".join(outcome.missing)
    return dg.AssetCheckResult(
        passed=outcome.success,
        # ERROR stops downstream assets (blocking check); a failure of warnings only must not
        severity=dg.AssetCheckSeverity.WARN
        if outcome.failed and not outcome.blocking
        else dg.AssetCheckSeverity.ERROR,
        metadata={k: v for k, v in metadata.items() if v is not None},
        description=None if outcome.success else f"{len(failed)} expectation(s) failed",
    )


def build_quality_check(suite: str, asset_key: tuple[str, ...]) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(list(asset_key)),
        name=f"{CHECK_PREFIX}{suite}",
        blocking=True,
        description=f"Great Expectations suite `{suite}` (expectations/suites.py): critical expectations "
        "block downstream assets, warnings do not. Results in quality.expectation_results; Data Docs "
        "via `ecom quality docs`.",
    )
    def _check(
        context: dg.AssetCheckExecutionContext, quality: QualityResource, postgres: PostgresResource
    ) -> dg.AssetCheckResult:
        run = quality.run([suite], run_id=context.run.run_id, settings=settings_for(postgres))
        outcome = run.suite(suite)
        context.log.info(f"{suite}: {outcome.status}, score {outcome.score}; Data Docs {run.docs_index}")
        result = check_result(outcome)
        return dg.AssetCheckResult(
            passed=result.passed,
            severity=result.severity,
            metadata={**result.metadata, "data_docs": dg.MetadataValue.path(str(run.docs_index))},
            description=result.description,
        )

    return _check


def build_quality_checks(suites: dict[str, tuple[str, ...]] | None = None) -> list[dg.AssetChecksDefinition]:
    """A check per suite (default: every suite, including one per foreign key the dbt project declares)."""
    suites = suites if suites is not None else suite_assets(get_settings().dbt.project_dir)
    return [build_quality_check(name, key) for name, key in suites.items()]
