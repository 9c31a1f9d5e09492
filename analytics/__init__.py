"""Customer analytics room: RFM segments, cohorts, BG/NBD + Gamma-Gamma lifetime value and recommendations.

Pure pandas/numpy/scipy functions over one canonical lines frame (see analytics.io), run by
`ecom analytics --from-csv` (analytics.cli) and by the Dagster assets in orchestration/defs/analytics through the
same analytics.pipeline code. docs/analytics.md has the design and the figures.
"""
