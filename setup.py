# setuptools has no pyproject.toml key for cffi_modules (python-cffi/cffi#55): this is all it holds.
from setuptools import setup

setup(cffi_modules=["harness/_executor_build.py:ffibuilder"])
