"""clone3-fuzz: a struct-compatibility fuzzer for the Linux clone3() system call.

The package is four layers, each a folder, and imports only ever go down the list:

- :mod:`clone3_fuzz.model`: what the kernel must do. The ABI, the case format, kernel
  profiles, the oracle, the relations and the verdicts: plain Python that never loads the
  compiled executor.
- :mod:`clone3_fuzz.runtime`: doing it for real. The C executor and its sandbox (with their
  cffi build), the probe that measures the running kernel.
- :mod:`clone3_fuzz.campaign`: searching. Decoding fuzzer inputs, the Hypothesis
  strategies, workers and their supervisor, findings, reproducers and the corpus.
- :mod:`clone3_fuzz.outputs`: telling. Reports, the CI job, benchmarks.

The command line (:mod:`clone3_fuzz.cli`) sits on top. Users' own tests import
:mod:`clone3_fuzz.strategies`.
"""

from importlib import metadata

try:
    __version__ = metadata.version("clone3-fuzz")
except metadata.PackageNotFoundError:  # run from a checkout without being installed
    __version__ = "0+unknown"

#: The version of the JSON documents clone3-fuzz writes (report.json and every --json
#: output); see README.md, "JSON outputs". Raised when a key changes meaning or goes away.
SCHEMA_VERSION = 1
