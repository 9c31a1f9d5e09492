"""The front door: the `ecom` command (every room's sub-commands assembled), `ecom up/down/status` and the demo.

It sits on top of every room; nothing imports it. The kernel every room shares (settings, errors, db, Spark
session, stats) is `kernel/`; the local services' launcher is `stack/`.
"""
