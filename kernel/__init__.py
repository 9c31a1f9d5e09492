"""The kernel every room may import: settings (the one settings module), errors, Postgres access, the Spark
session factory and summary statistics. It imports no room of the platform."""
