"""The benchmark driver: specs, plan, executors and REPORT.md (entry point: benchmarks.run_all)."""
