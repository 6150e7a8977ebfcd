"""The training loop: rollouts, rewards, advantages, update, on OpenRLHF's DeepSpeed pieces.

One step, on every rank: take this rank's share of the step's prompts, sample a group of
completions per prompt, score them with the reward plugins (drawing more with dynamic sampling),
turn rewards into advantages with the estimator plugin *within each complete group* (groups never
straddle ranks), and update the policy with the loss the estimator names plus the auxiliary terms.
DeepSpeed averages gradients over ranks, so the weights stay identical everywhere. Nothing here
branches on an algorithm's name: the estimator names its loss, the loss says whether a reference
model exists at all, and the rollout engine is the plugin that ``rollout.engine`` names. The parts
are assembled by :mod:`fadtq.training.builder`; nothing here builds a model.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from fadtq.api import AdvantageEstimator, Loss
from fadtq.generation.engine import RolloutEngine
from fadtq.losses import LossInputs
from fadtq.policy.forward_batch import ForwardBatch
from fadtq.policy.logprobs import TokenStats, completion_logprobs
from fadtq.rollout_correction import correction_weights, mismatch_metrics
from fadtq.run_config import RunConfig
from fadtq.training import checkpoint
from fadtq.training.auxiliary import AuxiliaryTerm, MicroBatch, gather_ids, own_columns
from fadtq.training.run_folder import link_final, truncate_logs
from fadtq.training.sampler import Sampler, StepBatch
from fadtq.training.step_metrics import MetricsLog, StepTimer, UpdateTotals, reduce_over_ranks, step_metrics
from fadtq.training.step_plan import StepPlan
from fadtq.training.trackers import RunInfo, start_trackers

log = logging.getLogger("fadtq.train")


@dataclass
class Trainer:
    """GPG, GRPO or any registered estimator: the algorithm, on the parts the builder assembled."""

    cfg: RunConfig
    run_dir: Path
    plan: StepPlan
    rank: int
    strategy: object  # OpenRLHF's DeepspeedStrategy
    actor: object  # OpenRLHF's Actor, its model inside a DeepSpeed engine
    optim: torch.optim.Optimizer
    scheduler: object
    reference: object | None  # a frozen Actor, only for a loss that needs one
    estimator: AdvantageEstimator
    loss: Loss
    engine: RolloutEngine
    processor: object
    sampler: Sampler
    auxiliary: list[AuxiliaryTerm]
    timer: StepTimer
    start_step: int = 0

    @property
    def policy_model(self) -> torch.nn.Module:
        """The Hugging Face model inside the Actor's DeepSpeed engine."""
        return self.actor.model.module

    def train_step(self, step: int) -> tuple[dict[str, float], list[dict]]:
        """sample -> score -> (resample) -> advantages -> update -> log."""
        batch = self.sampler.sample(step)
        advantages = self.estimator(np.asarray(batch.scored.total), batch.groups, **self.cfg.advantage.options)
        device = next(self.policy_model.parameters()).device
        with self.timer.phase("update"):
            update = self.update(step, batch.forward, torch.as_tensor(advantages, dtype=torch.float32, device=device))
        with self.timer.phase("weight_sync"):
            self.engine.weights_updated()
        metrics = step_metrics(batch.scored, batch.rollouts, batch.lengths) | update | batch.metrics | self.timer.take()
        return reduce_over_ranks(metrics), self.samples(step, batch, advantages)

    def update(self, step: int, batch: ForwardBatch, advantages: torch.Tensor) -> dict[str, float]:
        """One optimizer step over the step's rollouts in micro-batches: the estimator's loss plus every
        auxiliary term, backward, and DeepSpeed's step at the accumulation boundary."""
        size = self.plan.micro_batch_size
        chunks = [list(range(i, i + size)) for i in range(0, len(advantages), size)]
        micro = [batch.select(rows) for rows in chunks]
        frozen = [self.frozen_logprobs(part) for part in micro]  # before any update
        totals = UpdateTotals(lr=float(self.optim.param_groups[0]["lr"]), micro_batches=len(chunks))
        for number, (rows, part, (old, ref)) in enumerate(zip(chunks, micro, frozen)):
            stats = self.logprobs(self.policy_model, part, with_entropy=True, gather_ids=gather_ids(self.auxiliary))
            weights = self.correction(part, stats.logprobs if old is None else old, totals)
            loss, parts = self.loss.fn(LossInputs(stats.logprobs, advantages[rows], part.action_mask, old, ref,
                                                  agg_mode=self.cfg.train.loss_agg_mode, weights=weights),
                                       clip_eps=self.cfg.train.clip_eps, kl_coef=self.cfg.train.kl_coef)
            for term, view in zip(self.auxiliary, own_columns(self.auxiliary, stats)):
                value, weight = term(self.policy_model, part, view, MicroBatch(step, number, len(chunks)))
                loss = loss + term.coef * value
                totals.add_term(term.metric, value.item(), weight)
            self.strategy.backward(loss, self.actor, self.optim)
            if self.actor.model.is_gradient_accumulation_boundary():
                totals.grad_norm = grad_norm(self.policy_model)  # reduced over ranks, before the step clips
            self.strategy.optimizer_step(self.optim, self.actor, self.scheduler)
            totals.add(parts, stats, part)
        return totals.metrics(self.actor.model.get_global_grad_norm())

    def correction(self, batch: ForwardBatch, trainer_logprobs: torch.Tensor, totals: UpdateTotals) -> torch.Tensor | None:
        """The rollout correction's weights for a micro-batch sampled by a copy of the weights (None
        where the engine sampled from the policy itself), its diagnostics added to ``totals``.
        ``trainer_logprobs``: the policy's before this step's update."""
        if batch.rollout_logprobs is None:
            return None
        cfg = self.cfg.train.rollout_correction
        trainer_logprobs = trainer_logprobs.detach()
        totals.add_mismatch(mismatch_metrics(trainer_logprobs, batch.rollout_logprobs, batch.action_mask, cfg.mode,
                                             cfg.threshold))
        return correction_weights(trainer_logprobs, batch.rollout_logprobs, batch.action_mask, cfg.mode, cfg.threshold)

    def frozen_logprobs(self, batch: ForwardBatch) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The rollout policy's log-probabilities (for a loss that needs them) and the reference's."""
        old = ref = None
        with torch.no_grad():
            if self.loss.needs_old_logprobs:
                with self.timer.phase("old_logprobs"):
                    old = self.logprobs(self.policy_model, batch).logprobs
            if self.loss.needs_reference:  # GPG never gets here: a test holds it to that
                with self.timer.phase("reference"):
                    ref = self.reference_logprobs(batch)
        return old, ref

    def reference_logprobs(self, batch: ForwardBatch) -> torch.Tensor:
        """The reference model's log-probabilities: the frozen copy's, or with adapters (LoRA) the
        policy's own base, adapters switched off."""
        if self.reference is not None:
            return self.logprobs(self.reference.model.module, batch).logprobs
        with self.policy_model.disable_adapter():
            return self.logprobs(self.policy_model, batch).logprobs

    def logprobs(self, model: torch.nn.Module, batch: ForwardBatch, **extra) -> TokenStats:
        """Log-probabilities under the distribution the engine sampled from (tempered, suppressed)."""
        return completion_logprobs(model, batch, self.cfg.rollout.temperature, self.engine.suppressed_token_ids,
                                   **extra)

    def samples(self, step: int, batch: StepBatch, advantages: np.ndarray) -> list[dict]:
        """The step's rows of ``samples.jsonl`` (rank 0, every ``output.sample_every`` steps)."""
        out = self.cfg.output
        if self.rank != 0 or not out.sample_every or step % out.sample_every:
            return []
        scored = batch.scored
        return [{"id": r.id, "label": r.label, "prompt": r.prompt, "completion": r.completion,
                 "ref_image": r.ref_image, "test_image": r.test_image,
                 "rewards": {k: v[i] for k, v in scored.components.items()} | {"total": scored.total[i]},
                 "advantage": float(advantages[i])}
                for i, r in enumerate(batch.rollouts[:out.samples_per_step])]

    def fit(self) -> Path:
        from tqdm import tqdm

        # every rank checks (the same folder): all stop together, before the first step
        checkpoint.check_disk_space(self.run_dir, checkpoint.checkpoint_bytes(self.policy_model),
                                    self.cfg.output.keep_checkpoints)
        if self.start_step == 0:
            torch.manual_seed(self.cfg.train.seed * 1000 + self.rank)
        trackers = [] if self.rank else start_trackers(self.cfg.output.loggers, RunInfo(
            self.run_dir, self.run_dir.name, self.cfg.output.project, asdict(self.cfg)))
        metrics_log = MetricsLog(self.run_dir, enabled=self.rank == 0, trackers=trackers)
        bar = tqdm(range(self.start_step, self.plan.steps), desc="train", disable=self.rank != 0,
                   dynamic_ncols=True, initial=self.start_step, total=self.plan.steps)
        save_every = self.cfg.output.save_every
        try:
            for step in bar:
                metrics, samples = self.train_step(step)
                metrics_log.write(step, metrics)
                if samples:
                    metrics_log.write_samples(step, samples)
                bar.set_postfix(reward=f"{metrics['reward/total']:.3f}", acc=f"{metrics['accuracy']:.2f}")
                if step + 1 == self.plan.steps or (save_every and (step + 1) % save_every == 0):
                    self.save(step + 1)
        finally:
            metrics_log.close()
        if self.rank == 0:
            link_final(self.run_dir, self.plan.steps)
        return self.run_dir

    def save(self, steps_done: int) -> Path:
        return checkpoint.save_checkpoint(self.run_dir, steps_done, self.strategy, self.actor, self.processor,
                                          self.rank, self.cfg.output.keep_checkpoints, self.cfg.data.image_size)

    def resume(self, from_checkpoint: Path) -> None:
        """Continue from ``from_checkpoint`` (chosen and verified before the model loaded): weights,
        optimizer, RNG, logs."""
        self.start_step = checkpoint.load_checkpoint(from_checkpoint, self.actor, self.rank)
        self.engine.weights_updated()
        if self.rank == 0:
            truncate_logs(self.run_dir, self.start_step)
            log.info("resumed from %s at step %d", from_checkpoint, self.start_step)


def grad_norm(model: torch.nn.Module) -> float | None:
    """The 2-norm of the gradients held on the parameters (``None`` when ZeRO holds them)."""
    grads = [p.grad.detach().float() for p in model.parameters() if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))) if grads else None
