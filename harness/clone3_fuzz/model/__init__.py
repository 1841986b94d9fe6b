"""The model: what clone3 must do, as plain Python.

Nothing here imports :mod:`clone3_fuzz.runtime` or loads the compiled executor (a test
checks it): the oracle can be read, tested and run without a C compiler. The few numbers
the model shares with the executor are read from the C header (:mod:`.constants`).
"""
