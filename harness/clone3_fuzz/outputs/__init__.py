"""Outputs: the CI job, its reports (JSON, Markdown, HTML, JUnit) and the benchmarks."""
