"""Native SQL with Metabase template tags, rendered the way Metabase runs it: values bound, never spliced.

Metabase substitutes a `{{tag}}` variable as a prepared-statement parameter and drops an optional `[[ ... ]]`
clause when a tag inside it has no value. `render` does the same for psycopg, so `check-sql` runs exactly the
query a dashboard runs, with the value as a bound parameter: a filter value can never change the SQL text.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from dashboards.spec import TAG_RE, CardSpec, SpecError

OPTIONAL_RE = re.compile(r"\[\[(.*?)\]\]", re.DOTALL)


def _coerce(value: Any, tag_type: str, tag: str) -> Any:
    if tag_type == "number":
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise SpecError(f"value {value!r} for number filter '{tag}' is not a number") from None
        return int(number) if number.is_integer() else number
    if tag_type == "date":
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            raise SpecError(
                f"value {value!r} for date filter '{tag}' is not an ISO date (YYYY-MM-DD)"
            ) from None
    return str(value)


def render(card: CardSpec, values: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """SQL text with `%(tag)s` placeholders and the parameter dict for psycopg.

    `values` maps tag name -> value; a tag without a value falls back to its spec default, and an optional
    clause whose tags have no value at all is dropped (Metabase's `[[ ]]` semantics). A required tag without a
    value is an error, as in Metabase.
    """
    given = dict(values or {})
    tags = {t.name: t for t in card.template_tags}
    resolved: dict[str, Any] = {}
    for name, tag in tags.items():
        value = given.get(name, tag.default)
        if value is None or value == "":
            if tag.required:
                raise SpecError(f"card '{card.name}': required filter '{name}' has no value")
            continue
        resolved[name] = _coerce(value, tag.type, name)

    def keep_optional(match: re.Match[str]) -> str:
        inner = match.group(1)
        return inner if all(n in resolved for n in TAG_RE.findall(inner)) else ""

    sql = OPTIONAL_RE.sub(keep_optional, card.sql)
    missing = [n for n in TAG_RE.findall(sql) if n not in resolved]
    if missing:
        raise SpecError(
            f"card '{card.name}': filter(s) {sorted(set(missing))} have no value and are not inside [[ ]]"
        )
    # psycopg uses %-placeholders: a literal % in the SQL (e.g. LIKE 'a%') must be doubled first
    sql = sql.replace("%", "%%")
    sql = TAG_RE.sub(lambda m: f"%({m.group(1)})s", sql)
    return sql, {n: resolved[n] for n in resolved if f"%({n})s" in sql}
