#!/bin/bash -eu
# ClusterFuzzLite's build of clone3-fuzz: the package (with its cffi executor), the
# atheris target frozen by PyInstaller, and beside it in $OUT what libFuzzer's tooling
# looks for: clone3_target.options (flags and dictionary), clone3_target.dict and
# clone3_target_seed_corpus.zip.
#
# The fuzzers then run in a container: clone3 must be reachable there. Docker's and
# podman's default seccomp profiles answer clone3 with ENOSYS (so that glibc falls back to
# clone), and the target then stops at once: "clone3 is unavailable here: ...". Run the
# container with a profile that allows clone3 (--security-opt seccomp=unconfined, or
# --privileged), and, when it is not root, with the unprivileged user namespaces that the
# sandbox falls back to.
pip3 install .
# --collect-all: the package's data (c/c3.h, whose constants the model reads; the corpus)
# and the compiled _executor module, which PyInstaller cannot see through cffi.
compile_python_fuzzer fuzz/clone3_target.py --collect-all clone3_fuzz
cp -L fuzz/clone3_target.options fuzz/clone3_target.dict "$OUT/"
(cd fuzz/clone3_target_seed_corpus && zip -q -r "$OUT/clone3_target_seed_corpus.zip" .)
