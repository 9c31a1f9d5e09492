"""Every benchmark of the platform (`ecom bench <name>`), on one small shared harness (`bench.harness`).
Benchmarks print figures; tests never time anything."""
