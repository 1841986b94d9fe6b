"""Campaigns: fuzzer inputs decoded to cases, Hypothesis strategies, workers and their
supervisor, findings with checked reproducers, and the corpus. It builds on the model and
the runtime."""
