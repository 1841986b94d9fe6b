"""The runtime: clone3 called for real, by the C executor in its sandbox, and the probe
that measures the running kernel. It builds on :mod:`clone3_fuzz.model`."""
