"""The ``fadtq`` command line. Each subcommand lives in ``fadtq/commands/<name>.py``.

A command module exposes ``add_arguments(parser)`` and ``run(args) -> int``. Only the module of
the command being run is imported, so ``fadtq reward`` does not pay for torch. A module with
``TAKES_REST = True`` receives the arguments its parser does not know as ``args.rest`` (``fadtq
train`` passes them to the trainer's own parser).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from fadtq.arguments import Parser
from fadtq.errors import report_errors

COMMANDS: dict[str, tuple[str, str]] = {
    "plugins": ("fadtq.commands.plugins", "list registered rewards, advantage estimators and judges"),
    "reward": ("fadtq.commands.reward", "score rollouts (JSONL) with the reward composition of a config"),
    "synth": ("fadtq.commands.synth", "write a procedural look-alike of MVTec LOCO AD"),
    "build-benchmark": ("fadtq.commands.build_benchmark", "build MVTec-LOCO-AD-Pair3C manifests from a LOCO root"),
    "make-tiny-model": ("fadtq.commands.make_tiny_model", "build a small Qwen2.5-VL offline (tokenizer included)"),
    "train": ("fadtq.commands.train", "train a policy with RL (as deepspeed fadtq/train.py; any --section.key value)"),
    "pretrain": ("fadtq.commands.pretrain", "give an offline Qwen2.5-VL eyes: describe fresh look-alike images"),
    "warmup": ("fadtq.commands.warmup", "teach a from-scratch model the answer format (random answers)"),
    "eval": ("fadtq.commands.eval", "accuracy, Balance Score and more for a model or a predictions file"),
    "report": ("fadtq.commands.report", "HTML and Markdown report (the paper's tables, curves, examples) over evals and runs"),
}


def _chosen(argv: list[str]) -> str | None:
    return next((arg for arg in argv if not arg.startswith("-")), None)


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = Parser(prog="fadtq", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = _chosen(argv)
    for name, (module_name, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(command)
            command.set_defaults(_run=module.run, _takes_rest=getattr(module, "TAKES_REST", False))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv

    def run() -> int:
        parser = build_parser(argv)
        args, rest = parser.parse_known_args(argv)
        if rest and not args._takes_rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        args.rest = rest
        return args._run(args)

    try:
        return report_errors(run)
    except KeyboardInterrupt:  # Ctrl-C: one line and the shell's status for it, no traceback
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
