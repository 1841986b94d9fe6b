"""What pyproject.toml cannot say: the cffi module (python-cffi/cffi#55), and the corpus
and the libFuzzer target's files shipped inside the package while the checkout's corpus/
and fuzz/ stay their one source."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CORPUS = Path(__file__).resolve().parent / "corpus"
FUZZ = Path(__file__).resolve().parent / "fuzz"


class BuildWithCorpus(build_py):
    """Copies corpus/seeds.jsonl, corpus/README.md and corpus/regressions/ into the built
    package as clone3_fuzz/corpus/, and the target's .options and .dict beside
    clone3_fuzz/campaign/target.py."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "clone3_fuzz" / "corpus"
        (target / "regressions").mkdir(parents=True, exist_ok=True)
        for path in [CORPUS / "seeds.jsonl", CORPUS / "README.md", *sorted((CORPUS / "regressions").glob("*"))]:
            shutil.copyfile(path, target / path.relative_to(CORPUS))
        for name in ("clone3_target.options", "clone3_target.dict"):
            shutil.copyfile(FUZZ / name, Path(self.build_lib) / "clone3_fuzz" / "campaign" / name)


setup(cffi_modules=["harness/clone3_fuzz/runtime/build.py:ffibuilder"], cmdclass={"build_py": BuildWithCorpus})
