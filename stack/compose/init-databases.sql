-- First start of the compose Postgres: one database per metadata owner besides the platform's own.
CREATE DATABASE dagster;
CREATE DATABASE mlflow;
CREATE DATABASE metabase;
