"""The batch landing: the Kafka log into the immutable master dataset in Postgres, exactly once.

`query.py` is the Spark query (`ecom land`); `master.py` is the master dataset's write path, which other
rooms' tools and tests also use to seed `master.*`.
"""
