"""The training loop: rollouts, rewards, advantages, update, on OpenRLHF's DeepSpeed pieces.

One step, on every rank: take this rank's share of the step's prompts, sample a group of
completions per prompt, score them with the reward plugins, turn rewards into advantages with
the estimator plugin *within each complete group* (groups never straddle ranks), and update the
policy with the loss the estimator declares. DeepSpeed averages gradients over ranks, so the
weights stay identical everywhere. Nothing here branches on an algorithm's name: the estimator
says which loss it needs and whether a reference model exists at all.
"""

from __future__ import annotations

import argparse
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from fadtq.api import AdvantageEstimator
from fadtq.commands.reward import parse_name_list
from fadtq.data.dataset import PairDataset, ensure_default_benchmark
from fadtq.errors import FadtqError
from fadtq.io import atomic_write_json, atomic_write_text
from fadtq.judging import JUDGE_TEMPLATES
from fadtq.paths import cache_dir
from fadtq.plugin_manager import Plugins, default_plugins
from fadtq.prompts import POLICY_TEMPLATE, PromptLibrary
from fadtq.rollout import Rollout
from fadtq.run_config import RunConfig, load_run_config
from fadtq.scoring import ScoredBatch, Scorer, build_scorer
from fadtq.training import cpu_compat
from fadtq.training.losses import LossInputs, LossSpec, get_loss
from fadtq.training.metrics import MetricsLog

log = logging.getLogger("fadtq.train")


# ----------------------------------------------------------------------------- command line
def parse_args(argv: Sequence[str]) -> tuple[str | None, dict[str, str]]:
    """``--config X``, ``--rewards a,b`` and ``--section.key value`` overrides."""
    parser = argparse.ArgumentParser(prog="fadtq/train.py", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="config file or preset name (default: cpu_default)")
    parser.add_argument("--rewards", help="comma-separated active reward terms, e.g. format,accuracy,tq")
    parser.add_argument("--local_rank", type=int, default=-1, help=argparse.SUPPRESS)  # set by the launcher
    known, rest = parser.parse_known_args(argv)
    overrides: dict[str, str] = {}
    i = 0
    while i < len(rest):
        flag = rest[i]
        if not flag.startswith("--") or len(flag) == 2:
            raise FadtqError(f"unexpected argument {flag!r}; overrides look like --section.key value")
        if "=" in flag:
            key, value = flag[2:].split("=", 1)
            i += 1
        elif i + 1 < len(rest):
            key, value = flag[2:], rest[i + 1]
            i += 2
        else:
            raise FadtqError(f"{flag}: missing value")
        overrides[key.replace("-", "_") if "." not in key else key] = value
    if known.rewards:
        overrides["reward.active"] = "[" + ",".join(parse_name_list(known.rewards, "--rewards")) + "]"
    return known.config, overrides


# ----------------------------------------------------------------------------- set-up
@dataclass
class StepPlan:
    world: int
    prompts_per_rank: int
    rollouts_per_rank: int
    micro_batches: int
    steps: int


def plan_steps(cfg: RunConfig, dataset_size: int, world: int) -> StepPlan:
    r = cfg.rollout
    if r.prompts_per_step % world:
        raise FadtqError(f"rollout.prompts_per_step ({r.prompts_per_step}) must be divisible by the {world} ranks")
    per_rank = r.prompts_per_step // world
    rollouts = per_rank * r.group_size
    if rollouts % cfg.train.micro_batch_size:
        raise FadtqError(f"train.micro_batch_size ({cfg.train.micro_batch_size}) must divide the {rollouts} "
                         "rollouts per rank per step (prompts_per_step / ranks * group_size)")
    per_epoch = dataset_size // r.prompts_per_step
    if per_epoch == 0:
        raise FadtqError(f"rollout.prompts_per_step ({r.prompts_per_step}) exceeds the {dataset_size} training pairs")
    steps = per_epoch * cfg.train.epochs
    if cfg.train.max_steps is not None:
        steps = min(steps, cfg.train.max_steps)
    return StepPlan(world, per_rank, rollouts, rollouts // cfg.train.micro_batch_size, steps)


def default_model_dir(size: str, seed: int) -> Path:
    from fadtq.training.tiny_model import make_tiny_model

    path = cache_dir() / "models" / f"qwen2.5-vl-{size}-seed{seed}"
    if not (path / "config.json").is_file():
        tmp = path.with_name(f".{path.name}.{time.time_ns()}")
        make_tiny_model(tmp, size=size, seed=seed)
        try:
            tmp.rename(path)
        except OSError:  # another rank finished first
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return path


def resolve_benchmark(cfg: RunConfig) -> Path:
    if cfg.data.benchmark:
        return Path(cfg.data.benchmark)
    return ensure_default_benchmark(scale=cfg.data.synth_scale, seed=cfg.data.seed)


def make_run_dir(cfg: RunConfig, config_name: str) -> Path:
    name = cfg.output.name or f"{Path(config_name).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(cfg.output.dir) / name
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def run_metadata(cfg: RunConfig, prompts: PromptLibrary, plugins: Plugins, estimator: AdvantageEstimator,
                 model_path: str, benchmark: Path, plan: StepPlan) -> dict:
    templates = (POLICY_TEMPLATE, *JUDGE_TEMPLATES)
    return {
        "template_hashes": {name: prompts.template_hash(name) for name in templates},
        "providers": {
            "advantage": plugins.advantages.provider(estimator.name),
            "judge": plugins.judges.provider(cfg.judge.name),
            **{f"reward/{t.reward}": plugins.rewards.provider(t.reward) for t in cfg.reward.terms.values() if t.reward},
        },
        "model_path": model_path,
        "benchmark": str(benchmark),
        "loss": estimator.loss,
        "reference_model": estimator.needs_reference,
        "plan": asdict(plan),
        "torch": torch.__version__,
    }


# ----------------------------------------------------------------------------- the loop
class Trainer:
    def __init__(self, cfg: RunConfig, config_name: str) -> None:
        self.cfg = cfg
        cpu_compat.apply()
        from fadtq.training.strategy import build_actor, build_strategy

        self.plugins = default_plugins()
        self.estimator = self.plugins.advantages.get(cfg.advantage.name)
        self.loss: LossSpec = get_loss(self.estimator.loss)
        self.prompts = PromptLibrary(cfg.prompts_dir)
        self.scorer: Scorer = build_scorer(cfg.reward, cfg.judge, self.plugins, self.prompts)
        param_dtype = "bf16" if cfg.model.dtype == "bfloat16" else "fp32"
        self.strategy = build_strategy(
            zero_stage=cfg.deepspeed.zero_stage,
            micro_train_batch_size=cfg.train.micro_batch_size,
            train_batch_size=cfg.rollout.prompts_per_step * cfg.rollout.group_size,
            param_dtype=param_dtype,
            seed=cfg.train.seed,
            max_norm=cfg.train.grad_clip,
        )
        self.rank = self.strategy.get_rank()
        world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
        self.model_path = cfg.model.path or str(default_model_dir(cfg.model.size, cfg.train.seed))
        benchmark = resolve_benchmark(cfg)
        self.dataset = PairDataset(benchmark / "train.jsonl", cfg.data.loco_root, max_side=cfg.data.image_size,
                                   prompts=self.prompts)
        self.plan = plan_steps(cfg, len(self.dataset), world)
        actor = build_actor(self.model_path, param_dtype, cfg.model.attn_implementation,
                            ds_config=self.strategy.get_ds_train_config())
        optim_cfg = {
            "optim": "adam",
            "adam": {"lr": cfg.train.lr, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": cfg.train.weight_decay},
            "lr_scheduler": "constant_with_warmup", "lr_warmup_ratio": 0.0,
            "max_norm": cfg.train.grad_clip, "scheduler_steps": self.plan.steps,
        }
        self.actor, self.optim, self.scheduler = self.strategy.prepare((actor, optim_cfg))
        self.reference = None
        if self.estimator.needs_reference:  # GPG never gets here: a test holds it to that
            self.reference = self.strategy.prepare(build_actor(self.model_path, param_dtype,
                                                               cfg.model.attn_implementation))
        from fadtq.training.processor import load_processor
        from fadtq.training.rollout import HFRolloutEngine, SamplingParams

        self.processor = load_processor(self.model_path)
        self.engine = HFRolloutEngine(self.policy_model, self.processor)
        self.sampling = SamplingParams(temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p,
                                       max_new_tokens=cfg.rollout.max_new_tokens)
        self.run_dir = make_run_dir(cfg, config_name)
        self.metrics = MetricsLog(self.run_dir, enabled=self.rank == 0)
        if self.rank == 0:
            atomic_write_text(self.run_dir / "config.yaml", yaml.safe_dump(asdict(cfg), sort_keys=False))
            atomic_write_json(self.run_dir / "metadata.json",
                              run_metadata(cfg, self.prompts, self.plugins, self.estimator, self.model_path,
                                           benchmark, self.plan))

    @property
    def policy_model(self) -> torch.nn.Module:
        """The Hugging Face model inside the Actor's DeepSpeed engine."""
        return self.actor.model.module

    def prompt_order(self, epoch: int) -> list[int]:
        """The same permutation on every rank (seeded by epoch), each rank taking its slice."""
        order = list(range(len(self.dataset)))
        random.Random(f"{self.cfg.train.seed}:{epoch}").shuffle(order)
        return order

    def step_prompts(self, step: int) -> list:
        per_step = self.cfg.rollout.prompts_per_step
        per_epoch = len(self.dataset) // per_step
        order = self.prompt_order(step // per_epoch)
        start = (step % per_epoch) * per_step + self.rank * self.plan.prompts_per_rank
        return [self.dataset[i] for i in order[start:start + self.plan.prompts_per_rank]]

    def fit(self) -> Path:
        from tqdm import tqdm

        torch.manual_seed(self.cfg.train.seed * 1000 + self.rank)
        bar = tqdm(range(self.plan.steps), desc="train", disable=self.rank != 0, dynamic_ncols=True)
        for step in bar:
            metrics = self.train_step(step)
            self.metrics.write(step, metrics)
            bar.set_postfix(reward=f"{metrics['reward/total']:.3f}", acc=f"{metrics['accuracy']:.2f}")
            if self.cfg.output.save_every and (step + 1) % self.cfg.output.save_every == 0:
                self.save(self.run_dir / f"checkpoint-{step + 1}")
        self.save(self.run_dir / "final")
        self.metrics.close()
        return self.run_dir

    def save(self, path: Path) -> None:
        self.strategy.save_model(self.actor, self.processor.tokenizer, str(path))
        if self.rank == 0:
            self.processor.save_pretrained(str(path))

    def train_step(self, step: int) -> dict[str, float]:
        from fadtq.training.rollout import RolloutPrompt

        pairs = self.step_prompts(step)
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
        update = self.update(result.scoring, torch.as_tensor(advantages, dtype=torch.float32))
        done = time.perf_counter()
        lengths = [len(c.completion_ids) for group in result.groups for c in group]
        local = step_metrics(scored, rollouts, lengths, update)
        local.update({"time/generate": generated - started, "time/score": scored_at - generated,
                      "time/update": done - scored_at})
        return self.reduce(local)

    def update(self, scoring, advantages: torch.Tensor) -> dict[str, float]:
        from fadtq.training.logprobs import completion_logprobs

        temperature = self.cfg.rollout.temperature
        suppress = self.engine.suppressed_token_ids
        size = self.cfg.train.micro_batch_size
        chunks = [list(range(i, i + size)) for i in range(0, len(advantages), size)]
        frozen: list[dict[str, torch.Tensor | None]] = []
        with torch.no_grad():  # log-probs of the rollout policy and of the reference, before any update
            for rows in chunks:
                batch = scoring.select(rows)
                old = completion_logprobs(self.policy_model, batch, temperature, suppress).logprobs \
                    if self.loss.needs_old_logprobs else None
                ref = completion_logprobs(self.reference.model.module, batch, temperature, suppress).logprobs \
                    if self.reference is not None else None
                frozen.append({"old": old, "ref": ref})
        totals: dict[str, float] = {}
        entropy_sum, tokens = 0.0, 0.0
        for rows, saved in zip(chunks, frozen):
            batch = scoring.select(rows)
            stats = completion_logprobs(self.policy_model, batch, temperature, suppress, with_entropy=True)
            inputs = LossInputs(stats.logprobs, advantages[rows], batch.action_mask, saved["old"], saved["ref"])
            loss, parts = self.loss.fn(inputs, clip_eps=self.cfg.train.clip_eps, kl_coef=self.cfg.train.kl_coef)
            self.strategy.backward(loss, self.actor, self.optim)
            self.strategy.optimizer_step(self.optim, self.actor, self.scheduler)
            for key, value in parts.items():
                totals[f"loss/{key}"] = totals.get(f"loss/{key}", 0.0) + value / len(chunks)
            entropy_sum += float(stats.entropy.detach().sum())
            tokens += float(batch.action_mask.sum())
        totals["policy/entropy"] = entropy_sum / max(tokens, 1.0)
        totals["optim/grad_norm"] = float(self.strategy.get_grad_norm(self.actor) or 0.0)
        totals["optim/lr"] = float(self.optim.param_groups[0]["lr"])
        return totals

    def reduce(self, local: dict[str, float]) -> dict[str, float]:
        counts = {k: v for k, v in local.items() if k.startswith("judge/")}
        means = {k: v for k, v in local.items() if k not in counts}
        return {**self.strategy.all_reduce(means, op="mean"), **self.strategy.all_reduce(counts, op="sum")}


def step_metrics(scored: ScoredBatch, rollouts: list[Rollout], lengths: list[int], update: dict) -> dict[str, float]:
    """Means of each reward component over the rollouts where it was computed, plus counts."""
    from fadtq.answer import format_ok, think_text

    metrics: dict[str, float] = {"reward/total": float(np.mean(scored.total))}
    for name, values in scored.components.items():
        present = [v for v in values if v is not None]
        if present:
            metrics[f"reward/{name}"] = float(np.mean(present))
    correct = scored.components.get("accuracy")
    if correct is None or all(v is None for v in correct):
        from fadtq.answer import extract_answer

        correct = [float(extract_answer(r.completion) == r.label) for r in rollouts]
    metrics["accuracy"] = float(np.mean([v or 0.0 for v in correct]))
    metrics["format_rate"] = float(np.mean([format_ok(r.completion) for r in rollouts]))
    metrics["length/tokens"] = float(np.mean(lengths))
    metrics["length/think_words"] = float(np.mean([len((think_text(r.completion) or "").split()) for r in rollouts]))
    metrics.update({"judge/judged": scored.judge.judged, "judge/skipped": scored.judge.skipped,
                    "judge/failed": scored.judge.failed, "judge/calls": scored.judge.calls})
    metrics.update(update)
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    import sys

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config_name, overrides = parse_args(sys.argv[1:] if argv is None else argv)
        cfg = load_run_config(config_name, overrides)
        trainer = Trainer(cfg, config_name or "cpu_default")
        run_dir = trainer.fit()
    except FadtqError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if trainer.rank == 0:
        print(f"run folder: {run_dir}")
    return 0
