"""Build hook: compile headrace.record._framing, the C walk over a batch's records (issue 14).

Hatchling builds the wheel; this hook compiles the one C file with setuptools' ``build_ext``
(which knows each platform's compiler flags) and adds the shared library to the wheel, or, for
``pip install -e .``, writes it next to its source where the editable install imports it.
Without a compiler the build still succeeds: the wheel stays pure Python and
headrace.record.framing walks records in Python instead (``framing.COMPILED`` is False).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

MODULE = "headrace.record._framing"
SOURCE = Path("broker/headrace/record/_framing.c")


class FramingExtensionHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        self._scratch = tempfile.mkdtemp(prefix="headrace-build-")
        built = _compile(root / SOURCE, Path(self._scratch))
        if built is None:
            return
        if version == "editable":
            # The editable install puts broker/ on sys.path: the library goes in place.
            shutil.copy2(built, root / SOURCE.parent / built.name)
        else:
            build_data["force_include"][str(built)] = f"headrace/record/{built.name}"
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        scratch = getattr(self, "_scratch", None)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _compile(source: Path, scratch: Path) -> Path | None:
    """The built library, or None (with a warning) when it cannot be built here."""
    try:
        from setuptools import Distribution, Extension
        from setuptools.command.build_ext import build_ext

        extension = Extension(MODULE, [str(source)], extra_compile_args=["-O2"])
        command = build_ext(Distribution({"name": "headrace", "ext_modules": [extension]}))
        command.build_lib = str(scratch / "lib")
        command.build_temp = str(scratch / "temp")
        command.ensure_finalized()
        command.run()
        return Path(command.get_ext_fullpath(MODULE))
    except Exception as error:  # no compiler, no headers: the pure-Python walk serves
        print(f"headrace: not building {MODULE} ({error}); records are walked in Python",
              file=sys.stderr)
        return None
