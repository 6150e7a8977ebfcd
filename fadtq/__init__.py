"""FAD-TQ: reinforcement learning for industrial anomaly reasoning with a thinking-quality reward."""

__version__ = "0.1.0"
