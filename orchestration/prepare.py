"""Build step: write the dbt manifest before Dagster loads definitions (`python -m orchestration.prepare`).

`ecom up` runs this before starting dagster-webserver and dagster-daemon, so no process parses the dbt
project at load time. It runs `dbt parse` only: no database connection is needed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from orchestration.defs.dbt.project import dbt_resource, ecom_dbt_project


def prepare() -> Path:
    """Parse the dbt project; return the manifest path. Raises if dbt cannot parse the project."""
    project = ecom_dbt_project()
    dbt_resource().cli(["parse", "--quiet"], target_path=project.target_path).wait()
    if not project.manifest_path.exists():
        raise RuntimeError(f"dbt parse did not write {project.manifest_path}")
    return project.manifest_path


def main() -> int:
    started = time.monotonic()
    try:
        path = prepare()
    except Exception as exc:  # dbt's own error is the useful line
        print(
            f"orchestration.prepare: dbt parse failed: {exc}; fix the dbt project and rerun", file=sys.stderr
        )
        return 1
    print(f"dbt manifest ready: {path} ({time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
