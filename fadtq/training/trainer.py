"""The training loop: rollouts, rewards, advantages, update, on OpenRLHF's DeepSpeed pieces.

One step, on every rank: take this rank's share of the step's prompts, sample a group of
completions per prompt, score them with the reward plugins, turn rewards into advantages with
the estimator plugin *within each complete group* (groups never straddle ranks), and update the
policy with the loss the estimator declares. DeepSpeed averages gradients over ranks, so the
weights stay identical everywhere. Nothing here branches on an algorithm's name: the estimator
says which loss it needs and whether a reference model exists at all.
"""

from __future__ import annotations

import logging
import random
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import yaml

from fadtq.errors import FadtqError, report_errors
from fadtq.io import atomic_write_json, atomic_write_jsonl, atomic_write_text, drop_partial_last_line, read_jsonl
from fadtq.plugin_manager import default_plugins
from fadtq.rollout import Rollout
from fadtq.run_config import RunConfig
from fadtq.training import checkpoint, cpu_compat
from fadtq.training.losses import LossInputs, get_loss
from fadtq.training.metrics import MetricsLog, step_metrics
from fadtq.training.setup import (StepPlan, default_model_dir, load_train_config, new_run_dir, parse_args, plan_steps,
                                  preflight, run_metadata)

log = logging.getLogger("fadtq.train")


class Trainer:
    def __init__(self, cfg: RunConfig, run_dir: Path) -> None:
        self.cfg = cfg
        cpu_compat.apply()
        ready = preflight(cfg)  # every check that can run before a model loads or the run folder exists
        from fadtq.training.strategy import build_actor, build_strategy

        self.plugins, self.estimator, self.prompts = ready.plugins, ready.estimator, ready.prompts
        self.scorer = ready.scorer
        self.loss = get_loss(self.estimator.loss)
        self.model_path = ready.model_path
        benchmark = ready.benchmark
        param_dtype = "bf16" if cfg.model.dtype == "bfloat16" else "fp32"
        self.strategy = build_strategy(
            zero_stage=cfg.deepspeed.zero_stage, micro_train_batch_size=cfg.train.micro_batch_size,
            train_batch_size=cfg.rollout.prompts_per_step * cfg.rollout.group_size, param_dtype=param_dtype,
            seed=cfg.train.seed, max_norm=cfg.train.grad_clip)
        self.rank = self.strategy.get_rank()
        world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
        self.dataset = ready.dataset
        self.plan: StepPlan = plan_steps(cfg, len(self.dataset), world)
        if self.model_path is None:  # rank 0 builds the cached default model, the others wait for it
            if self.rank == 0:
                default_model_dir(cfg.model.size, cfg.train.seed, cfg.model.warmup_steps, self.dataset)
            checkpoint.barrier()
            self.model_path = str(default_model_dir(cfg.model.size, cfg.train.seed, cfg.model.warmup_steps,
                                                    self.dataset))
        optim_cfg = {
            "optim": "adam",
            "adam": {"lr": cfg.train.lr, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": cfg.train.weight_decay},
            "lr_scheduler": "constant_with_warmup", "lr_warmup_ratio": 0.0,
            "max_norm": cfg.train.grad_clip, "scheduler_steps": self.plan.steps,
        }
        actor = build_actor(self.model_path, param_dtype, cfg.model.attn_implementation,
                            ds_config=self.strategy.get_ds_train_config())
        self.actor, self.optim, self.scheduler = self.strategy.prepare((actor, optim_cfg))
        self.reference = None
        if self.estimator.needs_reference:  # GPG never gets here: a test holds it to that
            self.reference = self.strategy.prepare(build_actor(self.model_path, param_dtype,
                                                               cfg.model.attn_implementation))
        from fadtq.training.processor import load_processor
        from fadtq.training.rollout import ROLLOUT_ENGINES, RolloutEngine, SamplingParams

        self.processor = load_processor(self.model_path)
        self.engine: RolloutEngine = ROLLOUT_ENGINES[cfg.rollout.engine](self.policy_model, self.processor)
        self.sampling = SamplingParams(temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p,
                                       max_new_tokens=cfg.rollout.max_new_tokens)
        self.run_dir = run_dir
        self.start_step = 0
        run_dir.mkdir(parents=True, exist_ok=True)  # only now: a run that fails before this leaves no folder
        if self.rank == 0:
            atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(asdict(cfg), sort_keys=False))
            atomic_write_json(run_dir / "metadata.json",
                              run_metadata(cfg, self.prompts, self.plugins, self.estimator, self.model_path,
                                           benchmark, self.plan))

    @property
    def policy_model(self) -> torch.nn.Module:
        """The Hugging Face model inside the Actor's DeepSpeed engine."""
        return self.actor.model.module

    # ------------------------------------------------------------------ data order
    def step_pairs(self, step: int) -> list:
        """This rank's prompts of ``step``: one seeded permutation per epoch, the same on every
        rank and after a resume, each rank taking its slice of the step's prompts."""
        per_step = self.cfg.rollout.prompts_per_step
        per_epoch = len(self.dataset) // per_step
        order = list(range(len(self.dataset)))
        random.Random(f"{self.cfg.train.seed}:{step // per_epoch}").shuffle(order)
        start = (step % per_epoch) * per_step + self.rank * self.plan.prompts_per_rank
        return [self.dataset[i] for i in order[start:start + self.plan.prompts_per_rank]]

    # ------------------------------------------------------------------ run
    def resume(self) -> None:
        latest = checkpoint.latest_checkpoint(self.run_dir)
        if latest is None:
            raise FadtqError(f"--resume {self.run_dir}: no complete checkpoint in {checkpoint.checkpoints_dir(self.run_dir)}")
        self.start_step = checkpoint.load_checkpoint(latest, self.actor, self.rank)
        if self.rank == 0:
            for name in ("metrics.jsonl", "samples.jsonl"):
                keep_rows_before(self.run_dir / name, self.start_step)
            log.info("resumed from %s at step %d", latest, self.start_step)

    def fit(self) -> Path:
        from tqdm import tqdm

        if self.start_step == 0:
            torch.manual_seed(self.cfg.train.seed * 1000 + self.rank)
        metrics_log = MetricsLog(self.run_dir, enabled=self.rank == 0)
        bar = tqdm(range(self.start_step, self.plan.steps), desc="train", disable=self.rank != 0,
                   dynamic_ncols=True, initial=self.start_step, total=self.plan.steps)
        try:
            for step in bar:
                metrics, samples = self.train_step(step)
                metrics_log.write(step, metrics)
                if samples:
                    metrics_log.write_samples(step, samples)
                bar.set_postfix(reward=f"{metrics['reward/total']:.3f}", acc=f"{metrics['accuracy']:.2f}")
                done = step + 1
                if done == self.plan.steps or (self.cfg.output.save_every and done % self.cfg.output.save_every == 0):
                    self.save(done)
        finally:
            metrics_log.close()
        if self.rank == 0:
            link = self.run_dir / "final"
            link.unlink(missing_ok=True)
            link.symlink_to(Path("checkpoints") / checkpoint.step_dir(self.run_dir, self.plan.steps).name / "policy")
        return self.run_dir

    def save(self, steps_done: int) -> Path:
        return checkpoint.save_checkpoint(self.run_dir, steps_done, self.strategy, self.actor, self.processor,
                                          self.rank, self.cfg.output.keep_checkpoints)

    # ------------------------------------------------------------------ one step
    def train_step(self, step: int) -> tuple[dict[str, float], list[dict]]:
        from fadtq.training.rollout import RolloutPrompt

        pairs = self.step_pairs(step)
        started = time.perf_counter()
        result = self.engine.generate([RolloutPrompt(p.ref_image, p.test_image, p.messages) for p in pairs],
                                      self.cfg.rollout.group_size, self.sampling)
        generated = time.perf_counter()
        rollouts = [
            Rollout(id=f"{step}:{pair.id}:{k}", group=f"{step}:{pair.id}", prompt=pair.prompt,
                    completion=c.text, label=pair.label, category=pair.category)
            for pair, group in zip(pairs, result.groups) for k, c in enumerate(group)
        ]
        scored = self.scorer.score(rollouts)
        advantages = self.estimator(np.asarray(scored.total), [r.group for r in rollouts], **self.cfg.advantage.options)
        scored_at = time.perf_counter()
        device = next(self.policy_model.parameters()).device
        update = self.update(result.scoring, torch.as_tensor(advantages, dtype=torch.float32, device=device))
        lengths = [len(c.completion_ids) for group in result.groups for c in group]
        local = step_metrics(scored, rollouts, lengths)
        local.update(update)
        local.update({"time/generate": generated - started, "time/score": scored_at - generated,
                      "time/update": time.perf_counter() - scored_at})
        samples = []
        if self.rank == 0 and self.cfg.output.sample_every and step % self.cfg.output.sample_every == 0:
            samples = [{"id": r.id, "label": r.label, "prompt": r.prompt, "completion": r.completion,
                        "rewards": {k: v[i] for k, v in scored.components.items()} | {"total": scored.total[i]},
                        "advantage": float(advantages[i])}
                       for i, r in enumerate(rollouts[: self.cfg.output.samples_per_step])]
        return self.reduce(local), samples

    def update(self, scoring, advantages: torch.Tensor) -> dict[str, float]:
        from fadtq.training.logprobs import completion_logprobs

        temperature, suppress = self.cfg.rollout.temperature, self.engine.suppressed_token_ids
        size = self.cfg.train.micro_batch_size
        chunks = [list(range(i, i + size)) for i in range(0, len(advantages), size)]
        batches = [scoring.select(rows) for rows in chunks]
        frozen = []
        with torch.no_grad():  # the rollout policy's and the reference's log-probs, before any update
            for batch in batches:
                old = completion_logprobs(self.policy_model, batch, temperature, suppress).logprobs \
                    if self.loss.needs_old_logprobs else None
                ref = completion_logprobs(self.reference.model.module, batch, temperature, suppress).logprobs \
                    if self.reference is not None else None
                frozen.append((old, ref))
        totals: dict[str, float] = {}
        entropy_sum, tokens, grad_norm = 0.0, 0.0, None
        for rows, batch, (old, ref) in zip(chunks, batches, frozen):
            stats = completion_logprobs(self.policy_model, batch, temperature, suppress, with_entropy=True)
            inputs = LossInputs(stats.logprobs, advantages[rows], batch.action_mask, old, ref)
            loss, parts = self.loss.fn(inputs, clip_eps=self.cfg.train.clip_eps, kl_coef=self.cfg.train.kl_coef)
            self.strategy.backward(loss, self.actor, self.optim)
            if self.actor.model.is_gradient_accumulation_boundary():
                grad_norm = _grad_norm(self.policy_model)  # reduced over ranks, before the step clips and zeroes
            self.strategy.optimizer_step(self.optim, self.actor, self.scheduler)
            for key, value in parts.items():
                totals[f"loss/{key}"] = totals.get(f"loss/{key}", 0.0) + value / len(chunks)
            entropy_sum += float(stats.entropy.detach().sum())
            tokens += float(batch.action_mask.sum())
        totals["policy/entropy"] = entropy_sum / max(tokens, 1.0)
        # DeepSpeed reports the norm from its ZeRO/bf16 optimizers only; without them (ZeRO 0, fp32,
        # the CPU default) it is None, and the norm of the reduced gradients measured above stands.
        engine_norm = self.actor.model.get_global_grad_norm()
        totals["optim/grad_norm"] = float(engine_norm if engine_norm is not None else grad_norm or 0.0)
        totals["optim/lr"] = float(self.optim.param_groups[0]["lr"])
        return totals

    def reduce(self, local: dict[str, float]) -> dict[str, float]:
        """Means over ranks, except counts (``judge/*``), which are summed."""
        counts = {k: v for k, v in local.items() if k.startswith("judge/")}
        means = {k: v for k, v in local.items() if k not in counts}
        return {**self.strategy.all_reduce(means, op="mean"), **self.strategy.all_reduce(counts, op="sum")}


def _grad_norm(model: torch.nn.Module) -> float | None:
    """The 2-norm of the gradients held on the parameters (``None`` when ZeRO holds them)."""
    grads = [p.grad.detach().float() for p in model.parameters() if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))) if grads else None


def keep_rows_before(path: Path, step: int) -> None:
    """Drop a log's rows from ``step`` on (and a torn last line): they are about to be redone."""
    if path.is_file():
        drop_partial_last_line(path)
        atomic_write_jsonl(path, [row for _, row in read_jsonl(path) if row.get("step", 0) < step])


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # A run started in the background of a script (`cmd &`, nohup, some schedulers) inherits an
    # ignored SIGINT, and Python then never raises KeyboardInterrupt: Ctrl-C or `kill -INT` would be
    # lost. Stopping cleanly at the latest complete checkpoint must work however the run was started.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
    trainer = None

    def run() -> int:
        nonlocal trainer
        args = parse_args(sys.argv[1:] if argv is None else argv)
        cfg, origins = load_train_config(args, default_plugins())
        with origins.blame():
            run_dir = args.resume or new_run_dir(cfg, args.config or "cpu_default")
            trainer = Trainer(cfg, run_dir)
        if args.resume:
            trainer.resume()
        trainer.fit()
        if trainer.rank == 0:
            print(f"run folder: {trainer.run_dir}")
        return 0

    try:
        return report_errors(run)
    except KeyboardInterrupt:
        where = trainer and checkpoint.latest_checkpoint(trainer.run_dir)
        print(f"\ninterrupted; last complete checkpoint: {where or 'none'}"
              + (f" (continue with --resume {trainer.run_dir})" if where else ""), file=sys.stderr)
        return 130
