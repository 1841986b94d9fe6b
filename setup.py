"""What pyproject.toml cannot say: the cffi module (python-cffi/cffi#55), the corpus
and the libFuzzer target's files shipped inside the package while the checkout's corpus/
and fuzz/ stay their one source, and the static executor program built into the wheel."""

import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CORPUS = Path(__file__).resolve().parent / "corpus"
FUZZ = Path(__file__).resolve().parent / "fuzz"
HARNESS = Path(__file__).resolve().parent / "harness"


class BuildWithCorpus(build_py):
    """Copies corpus/seeds*.jsonl, corpus/README.md and corpus/regressions/ into the built
    package as clone3_fuzz/corpus/, and the target's .options and .dict beside
    clone3_fuzz/campaign/target.py."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "clone3_fuzz" / "corpus"
        (target / "regressions").mkdir(parents=True, exist_ok=True)
        for path in [CORPUS / "seeds.jsonl", CORPUS / "seeds-cgroup2.jsonl", CORPUS / "README.md", *sorted((CORPUS / "regressions").glob("*"))]:
            shutil.copyfile(path, target / path.relative_to(CORPUS))
        for name in ("clone3_target.options", "clone3_target.dict"):
            shutil.copyfile(FUZZ / name, Path(self.build_lib) / "clone3_fuzz" / "campaign" / name)
        self._build_program(Path(self.build_lib) / "clone3_fuzz" / "runtime")

    @staticmethod
    def _build_program(runtime: Path) -> None:
        """clone3-fuzz-executor, linked static (runtime/program.py). Without a compiler or a
        static libc the wheel goes without it, and the package builds it on first use."""
        c_dir = HARNESS / "clone3_fuzz" / "runtime" / "c"
        sources = [str(c_dir / name) for name in ("standalone.c", "executor.c", "sandbox.c", "faults.c")]
        cc = shutil.which("cc") or shutil.which("gcc")
        built = cc and subprocess.run([cc, "-static", "-O2", "-std=gnu11", "-I", str(c_dir), "-o",
                                       str(runtime / "clone3-fuzz-executor"), *sources], capture_output=True)
        if not built or built.returncode:
            print("setup.py: no static clone3-fuzz-executor in this build (it is built on first use)", file=sys.stderr)


setup(cffi_modules=["harness/clone3_fuzz/runtime/build.py:ffibuilder"], cmdclass={"build_py": BuildWithCorpus})
