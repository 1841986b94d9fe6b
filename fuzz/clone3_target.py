#!/usr/bin/env python3
"""clone3-fuzz's atheris target, where libFuzzer users look for it: run it with
libFuzzer's flags (``fuzz/clone3_target.py CORPUS_DIR -max_total_time=60``) by the Python
that has clone3-fuzz installed. The target itself is ``clone3_fuzz.campaign.target``."""

from clone3_fuzz.campaign.target import main

if __name__ == "__main__":
    main()
