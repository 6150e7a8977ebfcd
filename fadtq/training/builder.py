"""Assembling a run's trainer: strategy, policy and optimizer, reference, processor, rollout engine,
sampler, auxiliary terms and the run folder, from a config that passed the preflight.

The command line (``fadtq.commands.train``) calls these in order; the model they load is the one
the config names or the default policy the command line resolved before, never one built here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from fadtq.policy.processor import load_processor
from fadtq.run_config import LR_SCHEDULERS, RunConfig
from fadtq.training.auxiliary import auxiliary_terms
from fadtq.training.freeze import freeze_vision_tower
from fadtq.training.lora import add_adapters
from fadtq.training.preflight import Prepared
from fadtq.training.run_folder import create_run_dir
from fadtq.training.sampler import Sampler
from fadtq.training.step_metrics import StepTimer
from fadtq.training.step_plan import StepPlan
from fadtq.training.trainer import Trainer

log = logging.getLogger(__name__)


def param_dtype(cfg: RunConfig) -> str:
    return "bf16" if cfg.model.dtype == "bfloat16" else "fp32"


def strategy_for(cfg: RunConfig, plan: StepPlan):
    """OpenRLHF's DeepSpeed strategy with the process group set up (gloo on CPU, NCCL on GPUs)."""
    from fadtq.training.strategy import build_strategy, offload_parts

    offload, ignored = offload_parts(cfg.deepspeed.offload_optimizer, cfg.deepspeed.offload_param,
                                     torch.cuda.is_available())
    strategy = build_strategy(zero_stage=cfg.deepspeed.zero_stage, micro_train_batch_size=plan.micro_batch_size,
                              train_batch_size=cfg.rollout.prompts_per_step * cfg.rollout.group_size,
                              param_dtype=param_dtype(cfg), seed=cfg.train.seed, max_norm=cfg.train.grad_clip,
                              offload=offload)
    if ignored and strategy.get_rank() == 0:
        log.warning(ignored)
    return strategy


def optimizer_config(cfg: RunConfig, plan: StepPlan) -> dict:
    """Adam and the learning-rate schedule, in OpenRLHF's terms (no warm-up)."""
    return {
        "optim": "adam",
        "adam": {"lr": cfg.train.lr, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": cfg.train.weight_decay},
        "lr_scheduler": LR_SCHEDULERS[cfg.train.lr_scheduler], "min_lr_ratio": cfg.train.min_lr_ratio,
        "lr_warmup_ratio": 0.0, "max_norm": cfg.train.grad_clip, "scheduler_steps": plan.steps,
    }


def build_policy(cfg: RunConfig, strategy, model_path: str, plan: StepPlan) -> tuple:
    """The policy's Actor in its DeepSpeed engine, with its optimizer and scheduler."""
    from fadtq.training.strategy import build_actor

    actor = build_actor(model_path, param_dtype(cfg), cfg.model.attn_implementation,
                        ds_config=strategy.get_ds_train_config())
    if cfg.train.freeze_vision_tower:
        freeze_vision_tower(actor.model)
    if cfg.train.lora.rank:
        actor.model = add_adapters(actor.model, cfg.train.lora, cfg.train.freeze_vision_tower)
    if cfg.train.gradient_checkpointing:
        # use_reentrant=False: the non-reentrant form, which passes gradients to a frozen tower's
        # outputs and to keyword arguments (PyTorch's recommended one). transformers checkpoints
        # only modules in training mode, and from_pretrained leaves the policy in eval mode (the
        # engines switch to eval mode to sample and back).
        actor.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        actor.model.train()
    return strategy.prepare((actor, optimizer_config(cfg, plan)))


def build_reference(cfg: RunConfig, strategy, model_path: str):
    """A frozen copy of the starting policy, for a loss that needs one."""
    from fadtq.training.strategy import build_actor

    return strategy.prepare(build_actor(model_path, param_dtype(cfg), cfg.model.attn_implementation))


def build_trainer(cfg: RunConfig, prepared: Prepared, strategy, model_path: str, run_dir: Path) -> Trainer:
    """Every part of the run, then its folder (a run that fails before this leaves no folder)."""
    rank = strategy.get_rank()
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    actor, optim, scheduler = build_policy(cfg, strategy, model_path, prepared.plan)
    loss = prepared.plugins.losses.get(prepared.estimator.loss)
    # with adapters, the reference is the policy's own base (adapters off), not a second copy
    reference = build_reference(cfg, strategy, model_path) if loss.needs_reference and not cfg.train.lora.rank else None
    processor = load_processor(model_path)
    engine = prepared.plugins.engines.get(cfg.rollout.engine).build(actor.model.module, processor,
                                                                    **cfg.rollout.options)
    timer = StepTimer(torch.cuda.synchronize if torch.cuda.is_available() else None)
    sampler = Sampler(cfg.rollout, cfg.train.seed, prepared.dataset, prepared.plan, rank, engine, prepared.scorer,
                      lambda value: strategy.all_reduce(value, op="max"), timer)
    create_run_dir(run_dir, cfg, prepared, model_path, rank)
    return Trainer(cfg, run_dir, prepared.plan, rank, strategy, actor, optim, scheduler, reference,
                   prepared.estimator, loss, engine, processor, sampler,
                   auxiliary_terms(cfg, processor, rank, world), timer)
