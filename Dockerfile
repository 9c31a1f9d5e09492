# One image for every Python part of the platform (stream, landing, Dagster, MLflow, provisioning).
# Used by docker-compose.yml; the same bootstrap logic as `make bootstrap`, minus the local Postgres.
FROM maven:3.9-eclipse-temurin-17 AS jars
WORKDIR /src
COPY stack/maven/pom.xml stack/maven/pom.xml
RUN mvn -q -B -f stack/maven/pom.xml -P kafka dependency:copy-dependencies -DoutputDirectory=/jars/kafka \
 && mvn -q -B -f stack/maven/pom.xml -P spark dependency:copy-dependencies -DoutputDirectory=/jars/spark

FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=jars /jars /app/.jars
COPY pyproject.toml requirements.lock ./
COPY . .
RUN python -m venv .venv && .venv/bin/pip install -q uv==0.13.8 \
 && .venv/bin/uv pip install -q --python .venv/bin/python -c requirements.lock -e '.[dev]' \
 && .venv/bin/python -m orchestration.prepare
ENV PATH=/app/.venv/bin:$PATH PYSPARK_PYTHON=/app/.venv/bin/python ECOM_STATE_DIR=/data
