"""dbt's layering convention, read from the project's files: only staging reads sources; every model and
macro above it (intermediate, marts, serving) reads models through `ref`, so a source's renames and casts
are written once."""

from __future__ import annotations

import re

from kernel.settings import get_settings

SOURCE_CALL = re.compile(r"\{\{[^}]*\bsource\s*\(")


def test_only_staging_reads_sources() -> None:
    project = get_settings().dbt.project_dir
    files = [*(project / "models").rglob("*.sql"), *(project / "macros").rglob("*.sql")]
    staging = project / "models" / "staging"
    readers = sorted(
        str(p.relative_to(project))
        for p in files
        if not p.is_relative_to(staging) and SOURCE_CALL.search(p.read_text())
    )
    assert not readers, f"read sources outside staging (use ref('stg_...')): {readers}"
    # and the check sees what it looks for: staging itself reads every source table through source()
    assert all(SOURCE_CALL.search(p.read_text()) for p in staging.glob("stg_*.sql"))
