"""Compiles the matching engine (``reference_exchange/matching.py``) with mypyc at install time.

Everything else about the package is in ``pyproject.toml``. The compiled module is optional: without mypyc
or without a working C compiler the build warns and the package installs with the same source running
interpreted. Beside each compiled module the build writes the SHA-256 of the source it came from, which
``reference_exchange.engine`` checks at import so that a stale build fails loudly instead of running.
Set ``CAPACITY_PURE_PYTHON=1`` to skip compiling.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

COMPILED_SOURCES = ["reference_exchange/matching.py"]
BUILT_FROM_SUFFIX = ".built-from"  # the same name reference_exchange.engine reads


class BuildExtRecordingSource(build_ext):
    """build_ext that records, beside each compiled engine module it built, the digest of its source."""

    def run(self) -> None:
        super().run()
        for source in COMPILED_SOURCES:
            module = source.removesuffix(".py").replace("/", ".")
            built = Path(self.get_ext_fullpath(module))
            if built.exists():
                digest = hashlib.sha256(Path(source).read_bytes()).hexdigest()
                built.with_name(Path(source).stem + BUILT_FROM_SUFFIX).write_text(digest + "\n")


def compiled_extensions() -> list:
    if os.environ.get("CAPACITY_PURE_PYTHON"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("setup.py: mypyc is not installed: the matching engine will run interpreted")
        return []
    extensions = mypycify(COMPILED_SOURCES, opt_level="3")
    for extension in extensions:
        extension.optional = True  # no C compiler: warn and install the interpreted source
    return extensions


setup(ext_modules=compiled_extensions(), cmdclass={"build_ext": BuildExtRecordingSource})
