"""The local stack without Docker: start, stop and check Postgres, Kafka, MLflow and Dagster
(`services.py`), a local Spark standalone cluster (`spark_cluster.py`); beside them the bootstrap script
and the Maven build of the JVM jars."""
