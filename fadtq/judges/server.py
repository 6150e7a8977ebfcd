"""Start and stop a local OpenAI-compatible judge server (vLLM, tiny offline Qwen3 by default).

Usage (``make judge-server`` runs the first line)::

    python -m fadtq.judges.server [--port 8000] [--model tiny|DIR|HUB_ID] [--device auto|cpu|cuda]
    python -m fadtq.judges.server --stop PID

It builds the tiny judge (:mod:`fadtq.judges.tiny_qwen3`) when asked for ``tiny``, starts the
server with :mod:`fadtq.serving.vllm_server` (vLLM from this venv: ``make vllm``) and prints
``pid``, ``url``, ``model`` and ``log`` as JSON. Point the ``openai`` judge at it with
``judge.options: {base_urls: [URL], model: MODEL}``. The tests start their servers with the same
functions. Why it is set up this way: ``docs/judge-server.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fadtq.arguments import Parser
from fadtq.paths import cache_dir
from fadtq.serving.vllm_server import VLLMServer, server_main, start_server

TINY = "tiny"
TINY_SERVED_NAME = "fadtq-tiny-judge"
# No free whitespace inside structured JSON: a weak model otherwise pads it until max_tokens
# ({"conciseness":\r\r\r...). disable_any_whitespace works only with the backend named.
NO_WHITESPACE = ("--structured-outputs-config", '{"backend": "xgrammar", "disable_any_whitespace": true}')
# The judge prompt must fit --max-model-len (the tiny judge's tokenizer is trained on the judge
# templates, so a prompt stays a few hundred tokens).
JUDGE_ARGS = {"cpu": ("--max-model-len", "1024", *NO_WHITESPACE), "cuda": ("--max-model-len", "4096", *NO_WHITESPACE)}


def tiny_model_dir() -> Path:
    return cache_dir() / "tiny-qwen3-judge"


def ensure_tiny_model(out: Path | None = None) -> Path:
    """Build the tiny judge once; a finished build is recognised by its tokenizer, written last."""
    out = out or tiny_model_dir()
    if not (out / "tokenizer.json").is_file():
        from fadtq.judges.tiny_qwen3 import make_tiny_judge

        make_tiny_judge(out)
    return out


def start_judge(model: str, port: int, device: str, served_name: str | None = None,
                wait_s: float = 300.0) -> VLLMServer:
    """A judge server for ``model`` (a folder or hub id) with the judge's flags."""
    return start_server(model, port, device, served_name, JUDGE_ARGS[device], wait_s)


def serve(model: str, port: int, device: str) -> VLLMServer:
    """Build the tiny model if asked for, start and wait: the script's job."""
    if model == TINY:
        return start_judge(str(ensure_tiny_model()), port, device, TINY_SERVED_NAME)
    return start_judge(model, port, device)


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m fadtq.judges.server", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=TINY, help="'tiny' (built offline), a checkpoint folder or a hub id")
    parser.add_argument("--port", type=int, default=8000)
    return server_main(parser, argv, lambda args, device: serve(args.model, args.port, device))


if __name__ == "__main__":
    sys.exit(main())
