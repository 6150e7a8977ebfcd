"""``fadtq train`` and ``deepspeed fadtq/train.py``: the RL run, step by step.

Arguments: ``--config FILE|PRESET``, ``--rewards a,b``, ``--resume RUN_DIR`` and ``--section.key
value`` overrides. The run: load and check the config; the preflight (every check that needs no
model); the strategy and its process group; the policy (``model.path``, or the default policy of
``model.path: null``, built into the cache by rank 0 on first use, logged); the trainer; resume if
asked; fit. Ctrl-C stops at the last complete checkpoint, with the command that continues.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fadtq.arguments import Parser, parse_name_list, parse_overrides
from fadtq.config import Origins
from fadtq.errors import FadtqError, report_errors
from fadtq.folder_lock import folder_lock
from fadtq.plugin_manager import Plugins, default_plugins
from fadtq.run_config import RunConfig, load_run_config_traced

TAKES_REST = True
log = logging.getLogger("fadtq.train")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "as fadtq/train.py: --config FILE|PRESET --rewards a,b --resume RUN --section.key value ..."


def run(args: argparse.Namespace) -> int:
    return main(args.rest)


@dataclass
class TrainArgs:
    config: str | None
    overrides: dict[str, str]
    resume: Path | None
    rewards: list[str] | None = None  # --rewards, applied after loading (plugin rewards need no term)


def parse_args(argv: Sequence[str]) -> TrainArgs:
    """``--config X``, ``--rewards a,b``, ``--resume RUN_DIR`` and ``--section.key value`` overrides."""
    parser = Parser(prog="fadtq/train.py")
    parser.add_argument("--config", help="config file or preset name (default: cpu_default)")
    parser.add_argument("--rewards", help="comma-separated active reward terms, e.g. format,accuracy,tq")
    parser.add_argument("--resume", type=Path, help="continue the run in this folder from its last checkpoint")
    parser.add_argument("--local_rank", type=int, default=-1, help=argparse.SUPPRESS)  # set by the launcher
    known, rest = parser.parse_known_args(argv)
    overrides = parse_overrides(rest)
    rewards = parse_name_list(known.rewards, "--rewards") if known.rewards is not None else None
    if known.resume is not None:
        if known.config or overrides or rewards:
            raise FadtqError("--resume: takes the run's own config.yaml; give no --config, --rewards or overrides")
        if not (known.resume / "config.yaml").is_file():
            raise FadtqError(f"--resume {known.resume}: no config.yaml there (not a run folder)")
        return TrainArgs(str(known.resume / "config.yaml"), {}, known.resume)
    return TrainArgs(known.config, overrides, None, rewards)


def load_train_config(args: TrainArgs, plugins: Plugins) -> tuple[RunConfig, Origins]:
    """The run's config and where its keys came from: the file or preset, its overrides, then
    ``--rewards`` selected the way ``fadtq reward --rewards`` does, so a registered reward plugin
    that is not a configured term becomes an ungated term of weight 1 (and is saved as one in the
    run's config.yaml)."""
    cfg, origins = load_run_config_traced(args.config, args.overrides)
    if args.rewards:
        cfg.reward = cfg.reward.with_active(args.rewards, plugins.rewards.names())
    return cfg, origins


def build(cfg: RunConfig, run_dir: Path):
    """The run's trainer, each step of its making explicit."""
    from fadtq.training import cpu_compat

    cpu_compat.apply()  # OpenRLHF and DeepSpeed on a machine without CUDA
    from fadtq.training.builder import build_trainer, strategy_for
    from fadtq.training.preflight import preflight

    prepared = preflight(cfg)  # every check that can run before a model loads or the run folder exists
    strategy = strategy_for(cfg, prepared.plan)
    model_path = prepared.model_path or default_policy(cfg, prepared.dataset, strategy.get_rank())
    return build_trainer(cfg, prepared, strategy, model_path, run_dir)


def default_policy(cfg: RunConfig, dataset, rank: int) -> str:
    """The policy of ``model.path: null``: rank 0 builds it into the cache on first use while the
    other ranks wait, then every rank takes the same folder."""
    from fadtq.pretraining.default_policy import default_policy as resolve
    from fadtq.training.checkpoint import barrier

    if rank == 0:
        log.info("model.path is null: preparing the default policy (model.size %s, pretrain_steps %d, "
                 "warmup_steps %d)", cfg.model.size, cfg.model.pretrain_steps, cfg.model.warmup_steps)
        resolve(cfg, dataset)
    barrier()
    path = resolve(cfg, dataset)
    if rank == 0:
        log.info("policy: %s", path)
    return str(path)


def end_process_group() -> None:
    """Every rank is done: the process group is torn down here, not by the interpreter's exit, where a
    rank's communication threads can abort it ("terminate called without an active exception")."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # A run started in the background of a script (`cmd &`, nohup, some schedulers) inherits an
    # ignored SIGINT, and Python then never raises KeyboardInterrupt: Ctrl-C or `kill -INT` would be
    # lost. Stopping cleanly at the latest complete checkpoint must work however the run was started.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
    trainer = None

    def run_training() -> int:
        nonlocal trainer
        from fadtq.training.checkpoint import resumable_checkpoint
        from fadtq.training.run_folder import new_run_dir

        args = parse_args(sys.argv[1:] if argv is None else argv)
        cfg, origins = load_train_config(args, default_plugins())
        rank_zero = os.environ.get("RANK", "0") == "0"  # set by the launchers; the strategy is not up yet
        # the checkpoint to resume from, verified before anything loads (each rank checks the same files)
        resume_from = args.resume and resumable_checkpoint(args.resume, log.warning if rank_zero else lambda line: None)
        with origins.blame():
            run_dir = args.resume or new_run_dir(cfg, args.config or "cpu_default")
        # rank 0 holds the run folder's lock from here to the end: a second run into it is refused
        locked = folder_lock(run_dir, "--resume" if args.resume else "output.name") if rank_zero \
            else contextlib.nullcontext()
        with locked:
            with origins.blame():
                trainer = build(cfg, run_dir)
            if resume_from:
                trainer.resume(resume_from)
            trainer.fit()
        if trainer.rank == 0:
            print(f"run folder: {trainer.run_dir}")
        end_process_group()
        return 0

    try:
        return report_errors(run_training)
    except KeyboardInterrupt:
        from fadtq.training.checkpoint import latest_checkpoint

        where = trainer and latest_checkpoint(trainer.run_dir)
        print(f"\ninterrupted; last complete checkpoint: {where or 'none'}"
              + (f" (continue with --resume {trainer.run_dir})" if where else ""), file=sys.stderr)
        return 130
