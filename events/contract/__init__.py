"""The event contract: one versioned JSON Schema per event, and everything derived from it.

`transaction.v1.json` and `chargeback.v1.json` beside this file are the single definition. The producer
validates with `validate_transaction`, the Spark speed layer parses with `spark_schema()` and checks
with `spark_rejection_reason()` (both derived here, never written by hand), the batch landing and the
Great Expectations suites read `enum_values()` / `numeric_bounds()`. Change the JSON file, bump
`schema_version`, and every layer follows.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

CONTRACT_DIR = Path(__file__).resolve().parent
TRANSACTION_SCHEMA_VERSION = 1
CHARGEBACK_SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = frozenset({TRANSACTION_SCHEMA_VERSION})
# ip_country of an event whose source did not know it (ISO 3166's user-assigned "ZZ"): `ecom replay` sets it
# for files without IP data; features treat it as no evidence, like an empty country
UNKNOWN_COUNTRY = "ZZ"


@cache
def load_schema(name: str = "transaction", version: int = 1) -> dict[str, Any]:
    """The JSON Schema document `<name>.v<version>.json`."""
    return json.loads((CONTRACT_DIR / f"{name}.v{version}.json").read_text())


@cache
def _validator(name: str, version: int) -> Draft202012Validator:
    return Draft202012Validator(load_schema(name, version))


def _date_time_errors(event: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    errors = []
    for field_name, spec in schema["properties"].items():
        if spec.get("format") == "date-time" and isinstance(event.get(field_name), str):
            try:
                parsed = datetime.fromisoformat(event[field_name])
            except ValueError:
                errors.append(f"{field_name}: not an ISO 8601 date-time")
                continue
            if parsed.tzinfo is None:
                errors.append(f"{field_name}: date-time without a UTC offset")
    return errors


def validation_errors(event: Any, name: str = "transaction", version: int | None = None) -> list[str]:
    """Every way `event` breaks the contract, as short human-readable reasons ([] when valid)."""
    if not isinstance(event, dict):
        return [f"not a JSON object ({type(event).__name__})"]
    declared = event.get("schema_version")
    if version is None:
        if name == "transaction" and declared not in SUPPORTED_SCHEMA_VERSIONS:
            return [f"schema_version: unknown version {declared!r}"]
        version = declared if isinstance(declared, int) else 1
    schema = load_schema(name, version)
    errors = []
    for err in sorted(_validator(name, version).iter_errors(event), key=lambda e: list(e.path)):
        where = ".".join(str(p) for p in err.absolute_path) or "(event)"
        errors.append(f"{where}: {err.message}"[:300])
    errors.extend(_date_time_errors(event, schema))
    errors.extend(f"{where}: {NUL_REASON}" for where in _nul_strings(event))
    return errors


# Postgres text cannot store U+0000: an event carrying it would fail every insert of its batch, forever
NUL_REASON = "holds a NUL character (\\u0000), which Postgres text cannot store"


def _nul_strings(value: Any, where: str = "") -> list[str]:
    """Paths of the strings inside `value` that contain U+0000."""
    if isinstance(value, str):
        return [where or "(event)"] if "\x00" in value else []
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _nul_strings(v, f"{where}.{k}" if where else str(k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _nul_strings(v, f"{where}.{i}")]
    return []


def validate_transaction(event: Any) -> list[str]:
    return validation_errors(event, "transaction")


def validate_chargeback(event: Any) -> list[str]:
    return validation_errors(event, "chargeback", CHARGEBACK_SCHEMA_VERSION)


def field_names(name: str = "transaction", version: int = 1) -> list[str]:
    """Top-level fields in contract order."""
    return list(load_schema(name, version)["properties"])


def enum_values(name: str = "transaction", version: int = 1) -> dict[str, list[str]]:
    """Enumerated top-level fields and their allowed values (for validation and expectations)."""
    props = load_schema(name, version)["properties"]
    return {k: list(v["enum"]) for k, v in props.items() if "enum" in v}


def numeric_bounds(
    name: str = "transaction", version: int = 1
) -> dict[str, tuple[float | None, float | None]]:
    """(lower, upper) bounds of numeric top-level fields; exclusive minimums are reported as the bound."""
    out: dict[str, tuple[float | None, float | None]] = {}
    for k, v in load_schema(name, version)["properties"].items():
        if v.get("type") in ("number", "integer") and "const" not in v:
            lo = v.get("minimum", v.get("exclusiveMinimum"))
            hi = v.get("maximum", v.get("exclusiveMaximum"))
            out[k] = (lo, hi)
    return out


def _spark_type(spec: dict[str, Any]):  # -> pyspark.sql.types.DataType
    from pyspark.sql import types as T

    kind = spec.get("type")
    if kind == "string":
        # date-times stay strings at parse time; the stream converts them with an explicit format so a
        # bad value becomes a quarantine reason instead of a silent null
        return T.StringType()
    if kind == "integer":
        return T.LongType()
    if kind == "number":
        return T.DoubleType()
    if kind == "boolean":
        return T.BooleanType()
    if kind == "array":
        return T.ArrayType(_spark_type(spec["items"]), containsNull=True)
    if kind == "object":
        return T.StructType(
            [T.StructField(k, _spark_type(v), nullable=True) for k, v in spec["properties"].items()]
        )
    raise ValueError(f"contract type {kind!r} has no Spark mapping")


def _string_fields(schema: dict[str, Any]) -> list[str]:
    """Names of string-typed fields, top level and inside arrays of objects (e.g. line_items.product_id)."""
    names = []
    for field_name, spec in schema["properties"].items():
        if spec.get("type") == "string":
            names.append(field_name)
        elif spec.get("type") == "array":
            for sub, sub_spec in spec.get("items", {}).get("properties", {}).items():
                if sub_spec.get("type") == "string":
                    names.append(sub)
    return names


def spark_schema(name: str = "transaction", version: int = 1):  # -> pyspark.sql.types.StructType
    """Spark StructType derived from the JSON Schema (every field nullable: the contract checks decide)."""
    return _spark_type(load_schema(name, version))


def _any_item_pred(preds: list):
    """One lambda for F.exists: an item breaks at least one of `preds` (a NULL test counts as not broken)."""
    from pyspark.sql import functions as F

    def any_bad(x):
        out = F.coalesce(preds[0](x), F.lit(False))
        for p in preds[1:]:
            out = out | F.coalesce(p(x), F.lit(False))
        return out

    return any_bad


def _item_pred(sub: str, test):
    """A one-argument lambda for F.exists (PySpark counts default arguments as lambda parameters)."""
    return lambda x: test(x[sub])


def spark_rejection_reason(
    parsed_col: str = "event", name: str = "transaction", version: int = 1, raw_text_col: str | None = None
):
    """A Spark Column: NULL when the parsed struct meets the contract, else the first broken rule.

    Built from the same JSON Schema as `validation_errors`, so the stream and the producer agree;
    evaluated inside the JVM so validation costs no Python round trip per event.
    """
    from pyspark.sql import functions as F

    schema = load_schema(name, version)
    ev = F.col(parsed_col)
    checks: list[tuple[Any, str]] = [(ev.isNull(), "not a JSON object matching the contract")]
    const_version = schema["properties"].get("schema_version", {}).get("const")
    if const_version is not None:
        checks.append(
            (
                ev["schema_version"].isNull() | (ev["schema_version"] != F.lit(const_version)),
                "schema_version: unknown version",
            )
        )
    if raw_text_col is not None:
        # from_json keeps any JSON value of a string field (object, number, bool, array) as its JSON text;
        # the JSON Schema says "type": "string", so look at the raw text: the value must open with a quote
        raw = F.col(raw_text_col)
        names = _string_fields(schema)
        per_field = [
            (raw.rlike(r'"' + re.escape(n) + r'"\s*:\s*[^"\s]'), f"{n}: not a JSON string") for n in names
        ]
        # one scan of the payload for every field (a valid event never matches); only a payload that
        # matches pays for finding which field it was
        anyone = r'"(?:' + "|".join(re.escape(n) for n in names) + r')"\s*:\s*[^"\s]'
        checks.append((raw.rlike(anyone), _first_reason(per_field)))
    for field_name in schema.get("required", []):
        checks.append((ev[field_name].isNull(), f"{field_name}: missing or wrong type"))
    for field_name, spec in schema["properties"].items():
        col = ev[field_name]
        if "enum" in spec:
            checks.append((~col.isin(*spec["enum"]), f"{field_name}: not one of {spec['enum']}"))
        if "exclusiveMinimum" in spec:
            checks.append(
                (
                    col <= F.lit(spec["exclusiveMinimum"]),
                    f"{field_name}: must be > {spec['exclusiveMinimum']}",
                )
            )
        if "minimum" in spec:
            checks.append((col < F.lit(spec["minimum"]), f"{field_name}: must be >= {spec['minimum']}"))
        if "maximum" in spec:
            checks.append((col > F.lit(spec["maximum"]), f"{field_name}: must be <= {spec['maximum']}"))
        if "maxLength" in spec:
            checks.append(
                (F.length(col) > F.lit(spec["maxLength"]), f"{field_name}: longer than {spec['maxLength']}")
            )
        if "minLength" in spec:
            checks.append(
                (F.length(col) < F.lit(spec["minLength"]), f"{field_name}: shorter than {spec['minLength']}")
            )
        if "pattern" in spec:
            checks.append((~col.rlike(spec["pattern"]), f"{field_name}: does not match {spec['pattern']}"))
        if spec.get("format") == "date-time":
            checks.append((F.try_to_timestamp(col).isNull(), f"{field_name}: not an ISO 8601 date-time"))
        if spec.get("type") == "array":
            if "minItems" in spec:
                checks.append(
                    (
                        F.size(col) < F.lit(spec["minItems"]),
                        f"{field_name}: fewer than {spec['minItems']} items",
                    )
                )
            if "maxItems" in spec:
                checks.append(
                    (
                        F.size(col) > F.lit(spec["maxItems"]),
                        f"{field_name}: more than {spec['maxItems']} items",
                    )
                )
            item = spec.get("items", {})
            # (item predicate, reason) in check order; each becomes one `exists` over the array
            item_checks: list[tuple[Any, str]] = []
            for sub, sub_spec in item.get("properties", {}).items():
                item_checks.append(
                    (_item_pred(sub, lambda v: v.isNull()), f"{field_name}.{sub}: missing or wrong type")
                )
                if "exclusiveMinimum" in sub_spec:
                    lim = sub_spec["exclusiveMinimum"]
                    item_checks.append(
                        (_item_pred(sub, lambda v, m=lim: v <= m), f"{field_name}.{sub}: must be > {lim}")
                    )
                if "minimum" in sub_spec:
                    lim = sub_spec["minimum"]
                    item_checks.append(
                        (_item_pred(sub, lambda v, m=lim: v < m), f"{field_name}.{sub}: must be >= {lim}")
                    )
                if "maximum" in sub_spec:
                    lim = sub_spec["maximum"]
                    item_checks.append(
                        (_item_pred(sub, lambda v, m=lim: v > m), f"{field_name}.{sub}: must be <= {lim}")
                    )
            if item_checks:
                # one pass over the items for a valid event (any item breaking any rule); only a broken
                # array pays for finding the first rule it breaks, in the same order as before
                guard = F.exists(col, _any_item_pred([p for p, _ in item_checks]))
                checks.append((guard, _first_reason([(F.exists(col, p), t) for p, t in item_checks])))
    return _first_reason(checks)


def _first_reason(checks: list[tuple[Any, Any]]):
    """CASE WHEN over (condition, reason) pairs: the first true condition's reason (a NULL condition is
    false), NULL when none holds. A reason may itself be such a column (a guarded group of checks)."""
    from pyspark.sql import Column
    from pyspark.sql import functions as F

    reason = F.lit(None).cast("string")
    for cond, text in reversed(checks):
        value = text if isinstance(text, Column) else F.lit(text)
        reason = F.when(F.coalesce(cond, F.lit(False)), value).otherwise(reason)
    return reason
