"""The training loop: rollouts, rewards, advantages, update, on OpenRLHF's DeepSpeed pieces.

One step, on every rank: take this rank's share of the step's prompts, sample a group of
completions per prompt, score them with the reward plugins, turn rewards into advantages with
the estimator plugin *within each complete group* (groups never straddle ranks), and update the
policy with the loss the estimator names. DeepSpeed averages gradients over ranks, so the
weights stay identical everywhere. Nothing here branches on an algorithm's name: the estimator
names its loss, the loss says whether a reference model exists at all, and the rollout engine
is the plugin that ``rollout.engine`` names.
"""

from __future__ import annotations

import logging
import random
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import yaml

from fadtq.errors import FadtqError, report_errors
from fadtq.files import atomic_write_json, atomic_write_jsonl, atomic_write_text, drop_partial_last_line, read_jsonl
from fadtq.plugin_manager import default_plugins
from fadtq.rollout import Rollout
from fadtq.run_config import LR_SCHEDULERS, RunConfig
from fadtq.scoring import ScoredBatch
from fadtq.training import checkpoint, cpu_compat
from fadtq.training.dynamic_sampling import (choose_groups, concat_scoring, count, informative_groups,
                                            select_scored, still_wanted)
from fadtq.training.losses import LossInputs, token_mean
from fadtq.training.step_metrics import MetricsLog, accuracy, reduce_over_ranks, step_metrics
from fadtq.training.ptx import DescriptionLoss
from fadtq.training.setup import (StepPlan, default_model_dir, load_train_config, new_run_dir, parse_args, preflight,
                                  pretrained_model_dir, run_metadata)

if TYPE_CHECKING:
    from fadtq.generation.engine import RolloutResult

log = logging.getLogger("fadtq.train")


@dataclass
class Draw:
    """One round of generation and scoring within a step (several with dynamic sampling)."""

    result: RolloutResult
    rollouts: list[Rollout]
    scored: ScoredBatch
    generate_seconds: float
    score_seconds: float


class Trainer:
    def __init__(self, cfg: RunConfig, run_dir: Path) -> None:
        self.cfg = cfg
        cpu_compat.apply()
        ready = preflight(cfg)  # every check that can run before a model loads or the run folder exists
        from fadtq.training.freeze import freeze_vision_tower
        from fadtq.training.strategy import build_actor, build_strategy

        self.plugins, self.estimator, self.prompts = ready.plugins, ready.estimator, ready.prompts
        self.scorer = ready.scorer
        self.loss = self.plugins.losses.get(self.estimator.loss)
        self.model_path = ready.model_path
        benchmark = ready.benchmark
        param_dtype = "bf16" if cfg.model.dtype == "bfloat16" else "fp32"
        self.dataset = ready.dataset
        self.plan: StepPlan = ready.plan
        self.strategy = build_strategy(
            zero_stage=cfg.deepspeed.zero_stage, micro_train_batch_size=self.plan.micro_batch_size,
            train_batch_size=cfg.rollout.prompts_per_step * cfg.rollout.group_size, param_dtype=param_dtype,
            seed=cfg.train.seed, max_norm=cfg.train.grad_clip)
        self.rank = self.strategy.get_rank()
        self.world_size = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
        if self.model_path is None:  # rank 0 builds the cached default model, the others wait for it
            if self.rank == 0:
                self.default_model()
            checkpoint.barrier()
            self.model_path = str(self.default_model())
        optim_cfg = {
            "optim": "adam",
            "adam": {"lr": cfg.train.lr, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": cfg.train.weight_decay},
            "lr_scheduler": LR_SCHEDULERS[cfg.train.lr_scheduler], "min_lr_ratio": cfg.train.min_lr_ratio,
            "lr_warmup_ratio": 0.0,
            "max_norm": cfg.train.grad_clip, "scheduler_steps": self.plan.steps,
        }
        actor = build_actor(self.model_path, param_dtype, cfg.model.attn_implementation,
                            ds_config=self.strategy.get_ds_train_config())
        if cfg.train.freeze_vision_tower:
            freeze_vision_tower(actor.model)
        self.actor, self.optim, self.scheduler = self.strategy.prepare((actor, optim_cfg))
        self.reference = None
        if self.loss.needs_reference:  # GPG never gets here: a test holds it to that
            self.reference = self.strategy.prepare(build_actor(self.model_path, param_dtype,
                                                               cfg.model.attn_implementation))
        from fadtq.generation.engine import RolloutEngine, SamplingParams
        from fadtq.training.answer_entropy import answer_vocabulary
        from fadtq.training.processor import load_processor

        self.processor = load_processor(self.model_path)
        self.engine: RolloutEngine = self.plugins.engines.get(cfg.rollout.engine).build(
            self.policy_model, self.processor, **cfg.rollout.options)
        self.ptx = DescriptionLoss(cfg, self.processor, self.rank, self.world_size) \
            if cfg.train.ptx_coef > 0 else None
        self.answer_vocabulary = answer_vocabulary(self.processor.tokenizer) \
            if cfg.train.answer_entropy_coef > 0 else None
        self.sampling = SamplingParams(temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p,
                                       answer_top_p=cfg.rollout.answer_top_p,
                                       reasoning_top_p=cfg.rollout.reasoning_top_p,
                                       max_new_tokens=cfg.rollout.max_new_tokens,
                                       return_logprobs=self.engine.samples_from_copy)
        self.run_dir = run_dir
        self.start_step = 0
        run_dir.mkdir(parents=True, exist_ok=True)  # only now: a run that fails before this leaves no folder
        if self.rank == 0:
            atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(asdict(cfg), sort_keys=False))
            atomic_write_json(run_dir / "metadata.json",
                              run_metadata(cfg, self.prompts, self.plugins, self.estimator, self.model_path,
                                           benchmark, self.plan))

    def default_model(self) -> Path:
        """The offline policy of ``model.path: null``: pretrained, or format-warmed, or as built."""
        model = self.cfg.model
        if model.pretrain_steps:
            return pretrained_model_dir(self.cfg)
        return default_model_dir(model.size, self.cfg.train.seed, model.warmup_steps, self.dataset)

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
        self.engine.weights_updated()
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
                                          self.rank, self.cfg.output.keep_checkpoints, self.cfg.data.image_size)

    # ------------------------------------------------------------------ one step
    def refill_pairs(self, step: int, draw: int, size: int) -> list:
        """``size`` extra prompts for dynamic sampling: a seeded draw per (step, draw, rank), so a
        resumed run draws the same ones."""
        order = random.Random(f"{self.cfg.train.seed}:refill:{step}:{draw}:{self.rank}")
        return [self.dataset[i] for i in order.sample(range(len(self.dataset)), size)]

    def draw(self, step: int, number: int, pairs: list) -> Draw:
        """Generate a group per prompt and score it."""
        from fadtq.generation.engine import RolloutPrompt

        started = time.perf_counter()
        result = self.engine.generate([RolloutPrompt(p.ref_image, p.test_image, p.messages) for p in pairs],
                                      self.cfg.rollout.group_size, self.sampling)
        generated = time.perf_counter()
        tag = f"{step}" if number == 0 else f"{step}+{number}"
        rollouts = [
            Rollout(id=f"{tag}:{pair.id}:{k}", group=f"{tag}:{pair.id}", prompt=pair.prompt,
                    completion=c.text, label=pair.label, category=pair.category)
            for pair, group in zip(pairs, result.groups) for k, c in enumerate(group)
        ]
        scored = self.scorer.score(rollouts)
        return Draw(result, rollouts, scored, generated - started, time.perf_counter() - generated)

    def sample_batch(self, step: int) -> tuple[list[Draw], list[list[bool]], list[tuple[int, int]]]:
        """The step's draws, which of their groups are informative (with dynamic sampling) and the
        ``(draw, group)`` pairs it trains on: every group of the one draw, or with dynamic sampling
        the informative groups of up to ``1 + max_draws`` draws, each extra draw as large as the
        number of groups still missing on this rank (``rollout.refill: missing``) or, on every rank
        while any is short, as large as the first (``batch``)."""
        rollout = self.cfg.rollout
        draws = [self.draw(step, 0, self.step_pairs(step))]
        if not rollout.dynamic_sampling:
            return draws, [], [(0, g) for g in range(len(draws[0].result.groups))]
        wanted = self.plan.prompts_per_rank
        flags = [informative_groups(draws[0].scored.total, rollout.group_size)]
        for number in range(1, rollout.max_draws + 1):
            short = still_wanted(flags, wanted)
            if self.strategy.all_reduce(float(short), op="max") <= 0:  # every rank takes part in each round
                break
            size = short if rollout.refill == "missing" else wanted
            if size:
                draws.append(self.draw(step, number, self.refill_pairs(step, number, size)))
                flags.append(informative_groups(draws[-1].scored.total, rollout.group_size))
        return draws, flags, sorted(choose_groups(flags, wanted))

    def train_step(self, step: int) -> tuple[dict[str, float], list[dict]]:
        draws, flags, chosen = self.sample_batch(step)
        size = self.cfg.rollout.group_size
        rows = [(d, g * size + k) for d, g in chosen for k in range(size)]
        rollouts = [draws[d].rollouts[r] for d, r in rows]
        scored = select_scored([d.scored for d in draws], rows)
        scoring = concat_scoring([draws[d].result.scoring.select([r for dd, r in rows if dd == d])
                                  for d in sorted({d for d, _ in rows})], self.engine.pad_token_id)
        advantages = self.estimator(np.asarray(scored.total), [r.group for r in rollouts], **self.cfg.advantage.options)
        scored_at = time.perf_counter()
        device = next(self.policy_model.parameters()).device
        update = self.update(step, scoring, torch.as_tensor(advantages, dtype=torch.float32, device=device))
        synced = time.perf_counter()
        self.engine.weights_updated()
        lengths = [len(draws[d].result.groups[r // size][r % size].completion_ids) for d, r in rows]
        local = step_metrics(scored, rollouts, lengths)
        local.update(update)
        local.update({"time/generate": sum(d.generate_seconds for d in draws),
                      "time/score": sum(d.score_seconds for d in draws),
                      "time/update": synced - scored_at, "time/weight_sync": time.perf_counter() - synced})
        if self.cfg.rollout.dynamic_sampling:
            local.update(count(flags, chosen).metrics())
            local["sampling/first_draw_accuracy"] = accuracy(draws[0].rollouts)
        samples = []
        if self.rank == 0 and self.cfg.output.sample_every and step % self.cfg.output.sample_every == 0:
            samples = [{"id": r.id, "label": r.label, "prompt": r.prompt, "completion": r.completion,
                        "rewards": {k: v[i] for k, v in scored.components.items()} | {"total": scored.total[i]},
                        "advantage": float(advantages[i])}
                       for i, r in enumerate(rollouts[: self.cfg.output.samples_per_step])]
        return reduce_over_ranks(local), samples

    def update(self, step: int, scoring, advantages: torch.Tensor) -> dict[str, float]:
        from fadtq.training.logprobs import completion_logprobs

        temperature, suppress = self.cfg.rollout.temperature, self.engine.suppressed_token_ids
        size = self.plan.micro_batch_size
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
        # the learning rate this step applies, read before the scheduler moves it
        totals: dict[str, float] = {"optim/lr": float(self.optim.param_groups[0]["lr"])}
        entropy_sum, tokens, gap_sum, grad_norm = 0.0, 0.0, 0.0, None
        answer_entropy_sum, answers = 0.0, 0.0
        for number, (rows, batch, (old, ref)) in enumerate(zip(chunks, batches, frozen)):
            stats = completion_logprobs(self.policy_model, batch, temperature, suppress, with_entropy=True,
                                        gather_ids=self.answer_vocabulary.token_ids if self.answer_vocabulary else ())
            inputs = LossInputs(stats.logprobs, advantages[rows], batch.action_mask, old, ref,
                                agg_mode=self.cfg.train.loss_agg_mode)
            loss, parts = self.loss.fn(inputs, clip_eps=self.cfg.train.clip_eps, kl_coef=self.cfg.train.kl_coef)
            if self.answer_vocabulary is not None:
                answer_entropy, count = self.answer_entropy(batch, stats)
                loss = loss - self.cfg.train.answer_entropy_coef * answer_entropy
                answer_entropy_sum, answers = answer_entropy_sum + answer_entropy.item() * count, answers + count
            if self.ptx is not None:
                ptx_loss = self.ptx(self.policy_model, step, number, len(chunks))
                loss = loss + self.cfg.train.ptx_coef * ptx_loss
                parts["ptx_loss"] = ptx_loss.item()
            self.strategy.backward(loss, self.actor, self.optim)
            if self.actor.model.is_gradient_accumulation_boundary():
                grad_norm = _grad_norm(self.policy_model)  # reduced over ranks, before the step clips and zeroes
            self.strategy.optimizer_step(self.optim, self.actor, self.scheduler)
            for key, value in parts.items():
                totals[f"loss/{key}"] = totals.get(f"loss/{key}", 0.0) + value / len(chunks)
            entropy_sum += float(stats.entropy.detach().sum())
            tokens += float(batch.action_mask.sum())
            if batch.rollout_logprobs is not None:  # the forwards run before the step: the sampled weights
                gap_sum += float((stats.logprobs.detach() - batch.rollout_logprobs).abs().sum())
        totals["policy/entropy"] = entropy_sum / max(tokens, 1.0)
        if self.answer_vocabulary is not None:
            totals["policy/answer_entropy"] = answer_entropy_sum / max(answers, 1.0)
        if scoring.rollout_logprobs is not None:
            totals["rollout/logprob_gap"] = gap_sum / max(tokens, 1.0)
        # DeepSpeed reports the norm from its ZeRO/bf16 optimizers only; without them (ZeRO 0, fp32,
        # the CPU default) it is None, and the norm of the reduced gradients measured above stands.
        engine_norm = self.actor.model.get_global_grad_norm()
        totals["optim/grad_norm"] = float(engine_norm if engine_norm is not None else grad_norm or 0.0)
        return totals


    def answer_entropy(self, batch, stats) -> tuple[torch.Tensor, float]:
        """The mean class entropy at a micro-batch's answer words (with gradients), and their number."""
        from fadtq.training.answer_entropy import answer_positions, class_entropy

        answering = answer_positions(self.processor.tokenizer, batch.sequences[:, -batch.action_mask.shape[1]:],
                                     batch.action_mask)
        return token_mean(class_entropy(stats.gathered, self.answer_vocabulary), answering), float(answering.sum())


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
