"""Make the built Data Docs site self-contained: vendored CSS/JS instead of CDN links, no remote logo.

GX renders every page with <link>/<script> tags pointing at public CDNs and a logo fetched from S3 with
the context id in its query string. Offline (our machines, CI, many servers) the pages then show no
tables at all. After each build we copy `expectations/docs_vendor/` into the site and rewrite those URLs
to relative paths, so the site renders from the file system or `ecom quality docs --serve` alone.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

VENDOR_DIR = Path(__file__).resolve().parent / "docs_vendor"

# CDN URL (as GX 1.24 writes it) -> vendored file name
CDN_FILES: dict[str, str] = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js": (
        "bootstrap-table-filter-control.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css": (
        "bootstrap-table-filter-control.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css": (
        "bootstrap-datepicker.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js": (
        "bootstrap-datepicker.min.js"
    ),
    # the pass/fail icons of the result tables (its CSS finds ../webfonts/*.woff2 beside it)
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": "fontawesome/css/all.min.css",
}
ASSET_SUFFIXES = {".js", ".css", ".woff2"}
# the header logo is fetched from S3 with the data context id attached; the site ships its own copy
REMOTE_LOGO = re.compile(
    r"https://great-expectations-web-assets\.s3\.[a-z0-9-]+\.amazonaws\.com/[A-Za-z_-]+\.png[^\"']*"
)


def localize_site(site_dir: Path) -> int:
    """Copy the vendored assets into `site_dir/static/vendor` and point every page at them.

    Returns the number of pages rewritten. Idempotent: pages already rewritten are left as they are.
    """
    site_dir = Path(site_dir)
    if not site_dir.is_dir():
        return 0
    vendor = site_dir / "static" / "vendor"
    vendor.mkdir(parents=True, exist_ok=True)
    for src in VENDOR_DIR.rglob("*"):
        dest = vendor / src.relative_to(VENDOR_DIR)
        if src.is_file() and src.suffix in ASSET_SUFFIXES and not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)
    logo = site_dir / "static" / "images" / "logo-long.png"
    rewritten = 0
    for page in site_dir.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        rel = Path(os.path.relpath(site_dir / "static", page.parent))
        new = html
        for url, name in CDN_FILES.items():
            new = new.replace(url, (rel / "vendor" / name).as_posix())
        if logo.exists():
            new = REMOTE_LOGO.sub((rel / "images" / "logo-long.png").as_posix(), new)
        if new != html:
            page.write_text(new, encoding="utf-8")
            rewritten += 1
    return rewritten
