"""Reinforcement learning of a policy: the trainer and the parts the builder assembles it from
(strategy, sampler, auxiliary loss terms, checkpoints, metrics, the run folder)."""
