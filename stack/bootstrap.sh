#!/usr/bin/env bash
# Bootstrap: everything the platform needs on this machine, idempotent (a re-run with nothing changed is a no-op).
#   - system packages it checks for (Java 17, Maven, PostgreSQL 15 server binaries) and installs when root
#     (chromium + chromium-driver for UI tests, docker-compose to validate docker-compose.yml without an engine)
#   - .venv with the pinned Python dependencies (requirements.lock) and the project itself (.venv/bin/ecom),
#     their bytecode compiled once
#   - the JVM jars resolved by Maven into .jars/ (Kafka broker + tools, Spark's Kafka connector, Postgres JDBC)
#   - the speed layer's JVM module (streaming/jvm) built by Maven into .jars/speed/
#   - the dbt manifest Dagster loads (orchestration.prepare)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STAMPS=.local/stamps
mkdir -p "$STAMPS"
say() { printf '[bootstrap] %s\n' "$*"; }
die() { printf 'bootstrap: %s\n' "$*" >&2; exit 1; }
hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' \
  || die "Python 3.11 is required (found $("$PYTHON" --version 2>&1)); install python3.11 or set PYTHON=/path/to/python3.11"
command -v java >/dev/null || die "Java not found; install OpenJDK 17 (apt-get install openjdk-17-jdk-headless)"
command -v mvn >/dev/null || die "Maven not found; install it (apt-get install maven)"
PG_BIN=${ECOM_PG_BIN_DIR:-/usr/lib/postgresql/15/bin}
[ -x "$PG_BIN/initdb" ] || die "PostgreSQL 15 server binaries not found in $PG_BIN; apt-get install postgresql-15 or set ECOM_PG_BIN_DIR"

# --- system packages for tests (chromium for UI screenshots, docker-compose v1 to validate the compose file)
need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
command -v docker-compose >/dev/null || need_apt+=(docker-compose)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    say "installing ${need_apt[*]} (apt)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    say "warning: ${need_apt[*]} missing and not root; UI/compose tests need them (sudo apt-get install ${need_apt[*]})"
  fi
fi

# --- Python venv with pinned dependencies
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PYTHON" -m venv .venv
fi
[ -x .venv/bin/uv ] || .venv/bin/pip install -q uv==0.13.8
py_stamp=$(hash_of pyproject.toml requirements.lock)
if [ "$(cat $STAMPS/python 2>/dev/null)" != "$py_stamp" ]; then
  say "installing Python dependencies (requirements.lock)"
  .venv/bin/uv pip install -q --python .venv/bin/python -c requirements.lock -e '.[dev]'
  echo "$py_stamp" > $STAMPS/python
fi
# bytecode: uv installs no .pyc files, and where PYTHONDONTWRITEBYTECODE is set (it is on these machines)
# Python never caches one either, so every process would compile every module it imports from source:
# 1.8 s of dbt's 5.2 s start-up, paid by each dbt build, Dagster process and test. Compiled once here.
if [ "$(cat $STAMPS/bytecode 2>/dev/null)" != "$py_stamp" ]; then
  say "compiling the dependencies' bytecode"
  # a few packages ship files that do not compile (templates, Python 2 examples): skipped, not fatal
  .venv/bin/python -m compileall -q -j 0 .venv/lib/python3.11/site-packages >/dev/null 2>&1 || true
  echo "$py_stamp" > $STAMPS/bytecode
fi

# --- JVM jars via Maven (nothing downloads at run time)
jar_stamp=$(hash_of stack/maven/pom.xml)
if [ "$(cat $STAMPS/jars 2>/dev/null)" != "$jar_stamp" ] || [ ! -d .jars/kafka ] || [ ! -d .jars/spark ]; then
  say "resolving Kafka and Spark jars with Maven"
  rm -rf .jars/kafka .jars/spark
  mvn -q -B -f stack/maven/pom.xml -P kafka dependency:copy-dependencies -DoutputDirectory="$ROOT/.jars/kafka"
  mvn -q -B -f stack/maven/pom.xml -P spark dependency:copy-dependencies -DoutputDirectory="$ROOT/.jars/spark"
  echo "$jar_stamp" > $STAMPS/jars
fi

# --- the speed layer's JVM module (keyed state + scorer, streaming/jvm) into .jars/speed (issue 19)
speed_stamp=$(find streaming/jvm -type f \( -name pom.xml -o -name '*.java' \) | sort | xargs cat | sha256sum | cut -c1-16)
if [ "$(cat $STAMPS/speed_jvm 2>/dev/null)" != "$speed_stamp" ] || [ ! -f .jars/speed/ecom-speed-jvm.jar ]; then
  say "building the speed layer's JVM module with Maven"
  mvn -q -B -f streaming/jvm/pom.xml package
  mkdir -p .jars/speed
  cp .jars/build/speed-jvm/ecom-speed-jvm.jar .jars/speed/ecom-speed-jvm.jar
  echo "$speed_stamp" > $STAMPS/speed_jvm
fi

# --- dbt manifest for Dagster (prepared ahead of load, never parsed at every start)
if [ -f orchestration/prepare.py ]; then
  dbt_stamp=$(find dbt_project -path dbt_project/target -prune -o -path dbt_project/logs -prune -o -type f -print \
              | sort | xargs cat 2>/dev/null | sha256sum | cut -c1-16)
  if [ "$(cat $STAMPS/dbt 2>/dev/null)" != "$dbt_stamp" ] || [ ! -f dbt_project/target/manifest.json ]; then
    say "preparing the dbt manifest"
    .venv/bin/python -m orchestration.prepare >/dev/null
    echo "$dbt_stamp" > $STAMPS/dbt
  fi
fi
say "ready"
