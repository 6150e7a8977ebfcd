"""Serve a policy checkpoint the trainer wrote (``RUN/final``, ``RUN/checkpoints/step-N/policy``, a
``pretrained/`` folder) over vLLM's OpenAI-compatible API, for ``fadtq eval --server``.

Usage (``make policy-server MODEL=runs/x/final`` runs the first line)::

    python -m fadtq.serving.policy_server --model DIR [--port 8001] [--device auto|cpu|cuda]
    python -m fadtq.serving.policy_server --stop PID

It checks that vLLM can serve the policy (its architecture; on CPU its attention head size) before
starting, and prints ``pid``, ``url``, ``model`` and ``log`` as JSON. The served name is the
folder's run name (``x`` for ``runs/x/final``), as ``fadtq eval`` names its results.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fadtq.arguments import Parser
from fadtq.errors import FadtqError
from fadtq.files import read_json
from fadtq.serving.names import policy_name
from fadtq.serving.vllm_server import VLLMServer, server_main, start_server

# Two images per request (reference, test); the policy's prompts and completions are short.
POLICY_ARGS = ("--limit-mm-per-prompt", '{"image": 2}', "--max-model-len", "2048")


def start_policy_server(model: str | Path, port: int, device: str, wait_s: float = 300.0) -> VLLMServer:
    """A server for the policy folder ``model``, checked first."""
    from fadtq.generation.vllm import check_servable
    from fadtq.generation.vllm_compat import engine_args
    from fadtq.policy.family import family_of_config

    model = Path(model)
    if not (model / "config.json").is_file():
        raise FadtqError(f"--model {model}: no config.json; expected a policy folder the trainer wrote")
    config = read_json(model / "config.json")
    check_servable(config, f"--model {model}", device == "cuda")
    family_args = family_of_config(config, f"--model {model}").vllm_cpu_args if device == "cpu" else {}
    flags = cli_flags(engine_args() | family_args)
    return start_server(str(model.resolve()), port, device, policy_name(model), (*POLICY_ARGS, *flags), wait_s)


def cli_flags(args: dict[str, object]) -> list[str]:
    """vLLM's command-line flags for engine arguments (``--x``/``--no-x`` for booleans); they come after
    the server's defaults, which they override."""
    flags = []
    for key, value in args.items():
        name = key.replace("_", "-")
        flags += [f"--{name}" if value else f"--no-{name}"] if isinstance(value, bool) else [f"--{name}", str(value)]
    return flags


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m fadtq.serving.policy_server", description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="policy folder (RUN/final, a checkpoint's policy/, pretrained/...)")
    parser.add_argument("--port", type=int, default=8001)

    def start(args, device: str) -> VLLMServer:
        if not args.model:
            raise FadtqError("--model: required (a policy folder), unless --stop PID")
        return start_policy_server(args.model, args.port, device)

    return server_main(parser, argv, start)


if __name__ == "__main__":
    sys.exit(main())
