"""The speed layer: a Spark Structured Streaming query that parses every transaction from Kafka, adds the
customer's and terminal's recent context (keyed state) and the batch layer's baselines, scores it with the
champion fraud model and writes it to Postgres exactly once.

    state.py       per-customer / per-terminal window state (applyInPandasWithState, with a watermark)
    scoring.py     the champion model on the executors (mapInPandas over Arrow), hot-swapped between batches
    query.py       assembles the query from settings (topic, checkpoint, trigger, query name) and its
                   foreachBatch writer

Shared with the batch landing, one level up: `streaming.transforms` (parse, validate, flatten),
`streaming.sink` (each Spark task writes its rows in its own Postgres transaction: COPY + ON CONFLICT
DO NOTHING, alerts for stored rows; the driver writes the batch marker after every task succeeded) and
`streaming.common` (batch metrics, checkpoint guard).
"""
