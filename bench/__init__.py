"""`antifraud bench`: throughput, latency and resource use of the pipeline, measured in one run.

Entry point: `bench.run.main(...)` (wired as `antifraud bench`; also `python -m bench`).
Results: bench-results/<timestamp>.json and a rich table; `python -m bench.report <json>`
rewrites the generated block of docs/performance.md. See docs/performance.md.
"""
