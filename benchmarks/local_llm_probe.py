"""Measure the local LLM: tool-call accuracy, tokens/s and latency, then real role agents.

Part 1 sends N single-turn prompts with tools straight to llama-server's /v1/chat/completions and
checks the returned tool call (name and arguments); llama-server's own timings give prompt and
generation tokens/s. Part 2 runs real role agents (S1, C1 on every site, S2) with the project's
prompts and real tools on a small built environment, each role's input taken from the scripted
policy's upstream output, and compares each submission with the scripted policy's. ``--graph`` also
runs the whole server graph (all seven roles, 1 round of training) as ``fedagentbench run`` does.

Usage:
  python benchmarks/local_llm_probe.py [--model qwen2.5-coder-0.5b] [--url http://127.0.0.1:PORT]
      [--n 16] [--env /tmp/fab_us] [--guidance fine-grained goal-oriented] [--graph] [--skip-roles]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _fn(name: str, description: str, props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "description": description, "parameters": {
        "type": "object", "properties": props, "required": required}}}


_S = {"type": "string"}
_I = {"type": "integer"}
TOOLS = [
    _fn("list_dir", "List the files and folders under a path of the site's workspace.", {"path": _S}, ["path"]),
    _fn("read_data_cards", "Read the site's dataset cards (names, modality, labels).", {}, []),
    _fn("resize_images", "Resize every image under a folder to size x size pixels.",
        {"folder": _S, "size": _I}, ["folder", "size"]),
    _fn("remove_duplicates", "Remove near-duplicate images from a folder.", {"folder": _S}, ["folder"]),
    _fn("get_weather", "Current weather for a city.", {"city": _S}, ["city"]),
]
#: (user prompt, expected tool, expected arguments: value or None for "present")
CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("List what is in the folder raw/derm_a.", "list_dir", {"path": "raw/derm_a"}),
    ("Show me the files under work/organized.", "list_dir", {"path": "work/organized"}),
    ("Which datasets does this site have? Read the cards.", "read_data_cards", {}),
    ("Resize all images in work/organized to 224 pixels.", "resize_images", {"folder": "work/organized", "size": 224}),
    ("Make the images under work/clean 128x128.", "resize_images", {"folder": "work/clean", "size": 128}),
    ("Remove the near-duplicate images in work/organized.", "remove_duplicates", {"folder": "work/organized"}),
    ("What's the weather in Paris?", "get_weather", {"city": "Paris"}),
    ("Is it raining in Tokyo right now?", "get_weather", {"city": "Tokyo"}),
]


def post(url: str, body: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
    req = urllib.request.Request(url.rstrip("/") + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def _args_ok(got: dict[str, Any], want: dict[str, Any]) -> bool:
    for key, value in want.items():
        if key not in got:
            return False
        if isinstance(value, str) and str(got[key]).strip("/ ").lower() != value.lower():
            return False
        if isinstance(value, int) and str(got[key]) != str(value):
            return False
    return True


def probe_tool_calls(url: str, model: str, n: int, tool_choice: str = "auto") -> dict[str, Any]:
    """N single-turn tool-call prompts (cycling through CASES); name and argument accuracy, speed."""
    rows = []
    for i in range(n):
        prompt, tool, want = CASES[i % len(CASES)]
        start = time.perf_counter()
        reply = post(url, {"model": model, "temperature": 0, "tools": TOOLS, "tool_choice": tool_choice, "messages": [
            {"role": "system", "content": "You operate a hospital's imaging workspace through tools."},
            {"role": "user", "content": prompt}]})
        latency = time.perf_counter() - start
        calls = reply["choices"][0]["message"].get("tool_calls") or []
        name = calls[0]["function"]["name"] if calls else None
        try:
            args = json.loads(calls[0]["function"]["arguments"]) if calls else {}
        except json.JSONDecodeError:
            args = {}
        timings = reply.get("timings", {})
        rows.append({"case": i, "expected": tool, "got": name, "name_ok": name == tool,
                     "args_ok": name == tool and _args_ok(args, want), "latency_s": latency,
                     "gen_tps": timings.get("predicted_per_second"), "prompt_tps": timings.get("prompt_per_second"),
                     "content": (reply["choices"][0]["message"].get("content") or "")[:120]})
    ok = sum(r["args_ok"] for r in rows)
    summary = {"tool_choice": tool_choice, "n": n, "name_ok": sum(r["name_ok"] for r in rows), "name_and_args_ok": ok,
               "median_latency_s": statistics.median(r["latency_s"] for r in rows),
               "gen_tokens_per_s": statistics.median(r["gen_tps"] for r in rows if r["gen_tps"]),
               "prompt_tokens_per_s": statistics.median(r["prompt_tps"] for r in rows if r["prompt_tps"])}
    for r in rows:
        if not r["args_ok"]:
            print(f"  miss: expected {r['expected']}, got {r['got']} {r['content']!r}")
    return summary


def _runtime(env_dir: Path, run_dir: Path, model: Any, guidance: str):
    from graphs.runtime import Runtime

    return Runtime(env_dir, run_dir, model, guidance, "auto", {})  # type: ignore[arg-type]


def probe_roles(env_dir: Path, llm: Any, guidance: str, request: str) -> list[dict[str, Any]]:
    """S1, C1 per site and S2 with real tools; inputs from the scripted policy; compared with it."""
    from graphs.models import make
    from graphs.phases import run_role
    from tools.client import make_client_tools
    from tools.sandbox import Workspace

    scripted = make("scripted")
    run_dir = Path(tempfile.mkdtemp(prefix="llmprobe-"))
    ref_rt, rt = _runtime(env_dir, run_dir / "ref", scripted, guidance), _runtime(env_dir, run_dir, llm, guidance)
    rows: list[dict[str, Any]] = []

    def play(code: str, tools: list, payload: dict[str, Any], site: str | None = None) -> dict[str, Any] | None:
        ref, _, _, _ = run_role(code, ref_rt, tools, payload, {}, site)
        result, outcome, _, _ = run_role(code, rt, tools, payload, {}, site)
        rows.append({"role": code, "site": site, "submitted": result is not None, "failure": outcome["failure"],
                     "matches_scripted": _same(code, result, ref), "steps": outcome["steps"],
                     "tool_calls": outcome["tool_calls"], "seconds": outcome["seconds"]})
        print(f"  {guidance:13} {code}{'@' + site if site else '':9} submitted={result is not None} "
              f"matches_scripted={rows[-1]['matches_scripted']} failure={outcome['failure']} "
              f"steps={outcome['steps']} {outcome['seconds']:.1f}s", flush=True)
        return ref

    spec = play("S1", [], {"request": request})
    sites = json.loads((env_dir / "server" / "sites.json").read_text())["sites"]
    selections = {}
    for site in sites:
        tools = make_client_tools(Workspace.open(env_dir / "sites" / site))["C1"]
        selections[site] = play("C1", tools, {"site_id": site, "task_spec": spec}, site)
    play("S2", [], {"task_spec": spec, "selections": selections})
    return rows


def _same(code: str, got: dict[str, Any] | None, ref: dict[str, Any] | None) -> bool:
    """A tolerant comparison with the scripted policy's submission (the fields the scorers judge)."""
    if got is None or ref is None:
        return False
    if code == "S1":
        names = lambda s: len(s["target_classes"])
        return got["modality"] == ref["modality"] and names(got) == names(ref)
    if code == "C1":
        return sorted(got["selected"]) == sorted(ref["selected"])
    if code == "S2":
        verdict = lambda r: {a["site_id"]: a["approved"] for a in r["approvals"]}
        return verdict(got) == verdict(ref)
    return True


def probe_graph(env_dir: Path, spec: str, guidance: str, request: str) -> dict[str, Any]:
    """The whole server graph with the local model, as ``fedagentbench run`` configures it."""
    from fedagentbench.cli.run_cmd import reset_work
    from graphs.models import make
    from graphs.server import build_graph

    run_dir = Path(tempfile.mkdtemp(prefix="llmgraph-"))
    reset_work(env_dir)
    config = {"configurable": {"thread_id": "probe", "env_dir": str(env_dir), "run_dir": str(run_dir),
                               "model": make(spec), "guidance": guidance, "approve": "auto",
                               "train": {"rounds": 1, "local_epochs": 1, "baselines": False, "num_threads": 1}},
              "recursion_limit": 400}
    start = time.perf_counter()
    state = build_graph().invoke({"request": request}, config)
    outcomes = [{k: o.get(k) for k in ("role", "site_id", "success", "failure", "steps", "seconds")}
                for o in state.get("outcomes", [])]
    for o in outcomes:
        print(f"  {guidance:13} graph {o['role']}{'@' + o['site_id'] if o['site_id'] else '':9} "
              f"success={o['success']} failure={o['failure']} steps={o['steps']}", flush=True)
    return {"seconds": time.perf_counter() - start, "outcomes": outcomes}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="qwen2.5-coder-0.5b")
    p.add_argument("--url", default=None, help="a running llama-server (default: start one)")
    p.add_argument("--n", type=int, default=16, help="tool-call prompts")
    p.add_argument("--env", default="/tmp/fab_us", help="built environment (built at scale 0.3 if missing)")
    p.add_argument("--task", default=None, help="task id of the environment (default: its first)")
    p.add_argument("--guidance", nargs="+", default=["fine-grained", "goal-oriented"])
    p.add_argument("--tool-choice", nargs="+", default=["auto", "required"], help="part 1's tool_choice values")
    p.add_argument("--skip-roles", action="store_true")
    p.add_argument("--graph", action="store_true", help="also run the whole server graph per guidance")
    p.add_argument("--json", default=None, help="write all measurements here")
    args = p.parse_args()

    import os

    from graphs.local_llm import get_model
    from graphs.local_llm.server import URL_ENV, LocalServer

    model = get_model(args.model)
    server = None
    url = args.url
    if not url:
        start = time.perf_counter()
        server = LocalServer(model).start()
        url = server.url
        print(f"server {model.name} ready in {time.perf_counter() - start:.1f} s at {url}")
    os.environ[URL_ENV] = url  # make("local") below reuses this server
    report: dict[str, Any] = {"model": model.name}
    try:
        for choice in args.tool_choice:
            report.setdefault("tool_calls", {})[choice] = probe_tool_calls(url, model.name, args.n, choice)
            print("tool calls:", json.dumps(report["tool_calls"][choice]), flush=True)
        if server:
            report["server_rss_mb"] = round((server.rss_bytes() or 0) / 2**20)
            print(f"server RSS {report['server_rss_mb']} MB")
        if not args.skip_roles or args.graph:
            from envs.build import build, load

            env_dir = Path(args.env)
            if not (env_dir / "key" / "answer_key.json").exists():
                build("ultrasound", env_dir, seed=0, scale=0.3, force=True)
            key = load(env_dir).key
            task = key.tasks[args.task] if args.task else next(iter(key.tasks.values()))
            from graphs.models import make

            llm = make(f"local:{model.name}")
            for guidance in args.guidance:
                if not args.skip_roles:
                    rows = probe_roles(env_dir, llm, guidance, task.request)
                    report.setdefault("roles", {})[guidance] = rows
                    print(f"{guidance}: submitted {sum(r['submitted'] for r in rows)}/{len(rows)}, "
                          f"matches scripted {sum(r['matches_scripted'] for r in rows)}/{len(rows)}")
                if args.graph:
                    report.setdefault("graph", {})[guidance] = probe_graph(env_dir, f"local:{model.name}",
                                                                           guidance, task.request)
        if server:
            report["server_rss_mb_end"] = round((server.rss_bytes() or 0) / 2**20)
    finally:
        if server:
            server.stop()
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
