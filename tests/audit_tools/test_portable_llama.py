"""The llama.cpp build the HTTP-target tests run is portable across the project's machines.

A native build on an Intel Xeon with AMX emits AMX tile instructions (and AVX-512), which trap with
"invalid opcode" on VMs that do not grant AMX state; the suite then failed there while passing on
AMD EPYC machines. `make setup` builds llama-cpp-python for a portable x86-64 instruction set; this
test disassembles the shared libraries it installed and fails on any AMX or AVX-512 instruction.
"""

from __future__ import annotations

import importlib.util
import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

# AMX instructions, and any use of the AVX-512 registers (zmm, mask registers k1-k7).
FORBIDDEN = re.compile(r"\b(tilezero|tileloadd|tileloaddt1|tilestored|tilerelease|ldtilecfg|sttilecfg|tdpb[su]{2}d|"
                       r"tdpbf16ps|tdpfp16ps)\b|%zmm\d+|%k[1-7]\b")


def _llama_libraries() -> list[Path]:
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("llama-cpp-python is not installed (make setup installs it)")
    root = Path(spec.submodule_search_locations[0])
    return sorted(p for p in root.rglob("*.so*") if p.is_file())


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the AMX/AVX-512 hazard is x86-64 only")
def test_llama_cpp_contains_no_amx_or_avx512_instructions() -> None:
    objdump = shutil.which("objdump")
    if objdump is None:
        pytest.fail("objdump (binutils) is needed to check the llama.cpp build")
    libraries = _llama_libraries()
    assert any("ggml-cpu" in p.name or "ggml" in p.name for p in libraries), libraries
    offenders = {}
    for library in libraries:
        listing = subprocess.run([objdump, "-d", "--no-show-raw-insn", str(library)], capture_output=True,
                                 text=True, check=True).stdout
        hits = [line.strip() for line in listing.splitlines() if FORBIDDEN.search(line)]
        if hits:
            offenders[library.name] = hits[:5]
    assert not offenders, offenders
