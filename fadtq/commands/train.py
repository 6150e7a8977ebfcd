"""``fadtq train``: the trainer, the same entry point as ``fadtq/train.py`` (which stays for the
``deepspeed`` launcher). Its arguments go to the trainer's parser: ``--config``, ``--rewards``,
``--resume`` and ``--section.key value`` overrides."""

from __future__ import annotations

import argparse

TAKES_REST = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "as fadtq/train.py: --config FILE|PRESET --rewards a,b --resume RUN --section.key value ..."


def run(args: argparse.Namespace) -> int:
    from fadtq.training.trainer import main

    return main(args.rest)
