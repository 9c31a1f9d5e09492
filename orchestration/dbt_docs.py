"""The dbt docs site: generate (manifest + catalog from the live database) and serve it over HTTP."""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
from pathlib import Path

from kernel.errors import EcomError
from kernel.settings import Settings, get_settings, service_env


def dbt_command(args: list[str], settings: Settings | None = None, env: dict[str, str] | None = None):
    """Run the venv's dbt on the project with the platform's connection variables."""
    s = settings or get_settings()
    return subprocess.run(
        [
            str(s.venv_bin / "dbt"),
            *args,
            "--project-dir",
            str(s.dbt.project_dir),
            "--profiles-dir",
            str(s.dbt.profiles_dir),
        ],
        cwd=s.dbt.project_dir,
        env={**os.environ, **service_env(s), **(env or {})},
        capture_output=True,
        text=True,
    )


def generate_docs(settings: Settings | None = None) -> Path:
    """`dbt docs generate`; returns the folder holding index.html, manifest.json and catalog.json."""
    s = settings or get_settings()
    out = dbt_command(["docs", "generate"], s)
    if out.returncode != 0:
        tail = (out.stdout + out.stderr).strip().splitlines()[-3:]
        raise EcomError(
            f"dbt docs generate failed ({' | '.join(tail)}); check that Postgres is up (`ecom status`)"
        )
    target = s.dbt.project_dir / "target"
    if not (target / "catalog.json").exists():
        raise EcomError(
            f"dbt docs generate wrote no catalog.json in {target}; rerun with `ecom docs --no-serve`"
        )
    return target


def make_docs_server(directory: Path, host: str, port: int) -> http.server.ThreadingHTTPServer:
    """An HTTP server for the generated site (bound, not yet serving)."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    try:
        return http.server.ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise EcomError(
            f"cannot serve dbt docs on {host}:{port} ({exc.strerror}); set ECOM_DBT_DOCS_PORT to a free port"
        ) from exc


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - signature of the base class
        pass
