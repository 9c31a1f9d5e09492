"""Spark Structured Streaming over the Kafka log, two queries:

    speed/     the speed layer (`ecom stream`): keyed context, champion scoring, speed tables
    landing/   the batch landing (`ecom land`): the append-only master dataset

and what both share: `transforms` (read, parse, validate), `sink` (one Postgres transaction per batch with
its marker), `common` (batch metrics, checkpoint guard), `cli` (the two commands).
"""
