"""Performance benchmarks of the three adapters, and the transcription of the official metrics that tests and
bench_common compare with."""
