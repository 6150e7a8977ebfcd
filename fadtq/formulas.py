"""The method's reward, advantage and evaluation equations (numpy, no torch), each tested against
hand-computed values: the reward gate and mix, group advantages (GRPO, Dr. GRPO, RLOO), GPG's
alpha, accuracy, Balance Score, precision, recall and F1.

The policy losses (GPG's policy gradient, GRPO's clipped ratio with its KL term) are torch code on
log-probabilities and live in :mod:`fadtq.losses`.

Notation follows the paper (section 2.3): R is a rollout's total reward, a *group* is the set of
rollouts sampled for one prompt, eps = 1e-12.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

EPS = 1e-12


def clamp01(value: float | None) -> float:
    """``min(1, max(0, value))``: the paper's gate on the accuracy reward (``None`` closes it)."""
    return 0.0 if value is None else min(1.0, max(0.0, float(value)))


def weighted_sum(parts: list[tuple[float, float]]) -> float:
    """sum(weight * value) over (value, weight) pairs: a ``mix`` term. With the weights
    (eta, 1 - eta) on (r_conc, r_rel) it is the paper's r_tq = eta * r_conc + (1 - eta) * r_rel."""
    return sum(value * weight for value, weight in parts)


def normalise_score(score: int, top: int = 3) -> float:
    """A judge's integer score 0..top mapped to [0, 1]."""
    return score / top


def group_index(groups: Sequence[Hashable]) -> list[np.ndarray]:
    """Indices of each group's members, groups in order of first appearance."""
    members: dict[Hashable, list[int]] = {}
    for i, group in enumerate(groups):
        members.setdefault(group, []).append(i)
    return [np.asarray(idx) for idx in members.values()]


def group_standardise(rewards: np.ndarray, groups: Sequence[Hashable], eps: float = EPS, ddof: int = 0) -> np.ndarray:
    """A = (R - mu_group) / (sigma_group + eps); zero for zero-variance and single-rollout groups.

    ``ddof=0`` is the population standard deviation (the paper's "empirical" sigma); OpenRLHF and
    verl use ``ddof=1``, which only rescales advantages by sqrt(n / (n - 1)).
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    out = np.zeros_like(rewards)
    for idx in group_index(groups):
        values = rewards[idx]
        # Exactly equal rewards are a flat group even when their float mean is one rounding step
        # off: dividing that error by (0 + eps) would push the whole group one way.
        if len(values) <= ddof or np.ptp(values) == 0.0:
            continue
        out[idx] = (values - values.mean()) / (values.std(ddof=ddof) + eps)
    return out


def standardise_option_problems(options: dict, group_size: int) -> dict[str, str]:
    """What is wrong with :func:`group_standardise`'s options for groups of ``group_size``: a
    non-positive ``eps`` flips or blows up advantages, and a ``ddof`` of the group size or more
    leaves every group without a standard deviation (all advantages zero)."""
    problems = {}
    eps, ddof = options.get("eps", EPS), options.get("ddof", 0)
    if not eps > 0:
        problems["eps"] = f"expected a number > 0, got {eps!r}"
    if not (isinstance(ddof, int) and 0 <= ddof < group_size):
        problems["ddof"] = f"expected an integer in [0, {group_size}) for groups of {group_size} (rollout.group_size), got {ddof!r}"
    return problems


def group_centre(rewards: np.ndarray, groups: Sequence[Hashable]) -> np.ndarray:
    """A = R - mu_group (Dr. GRPO; the GPG paper's default)."""
    rewards = np.asarray(rewards, dtype=np.float64)
    out = np.zeros_like(rewards)
    for idx in group_index(groups):
        out[idx] = rewards[idx] - rewards[idx].mean()
    return out


def leave_one_out(rewards: np.ndarray, groups: Sequence[Hashable]) -> np.ndarray:
    """A_i = R_i - mean of the *other* rollouts of the group (RLOO); zero for a lone rollout."""
    rewards = np.asarray(rewards, dtype=np.float64)
    out = np.zeros_like(rewards)
    for idx in group_index(groups):
        n = len(idx)
        if n > 1:
            values = rewards[idx]
            out[idx] = values - (values.sum() - values) / (n - 1)
    return out


def zero_variance_count(rewards: np.ndarray, groups: Sequence[Hashable]) -> int:
    """M: how many rollouts sit in groups whose rewards are all exactly equal (lone rollouts too)."""
    rewards = np.asarray(rewards, dtype=np.float64)
    return int(sum(len(idx) for idx in group_index(groups) if np.ptp(rewards[idx]) == 0.0))


def gpg_alpha(rewards: np.ndarray, groups: Sequence[Hashable]) -> float:
    """The GPG paper's gradient correction alpha = B / (B - M); 1 when every group is flat.

    verl's ``gpg`` estimator uses B / (#rollouts with non-zero reward) instead; with FAD-TQ's
    rewards (rarely exactly 0) that is about 1, so the two differ and we follow the paper.
    """
    batch = len(rewards)
    flat = zero_variance_count(rewards, groups)
    return 1.0 if flat == batch else batch / (batch - flat)


# ----------------------------------------------------------------------------- evaluation (the paper, section 3.1)
def accuracy(correct: Sequence[bool]) -> float:
    """Accuracy = (1/N) sum_i 1[y_hat_i = y_i]; an unparseable answer is simply not equal to y_i."""
    if not correct:
        raise ValueError("accuracy of no predictions")
    return sum(bool(c) for c in correct) / len(correct)


def balance_score(counts: Sequence[float], eps: float = EPS) -> float:
    """Balance Score = H(p) / log(3), H(p) = -sum_c p_c log(p_c + eps), p the predicted-option distribution.

    ``counts`` holds how often each of the three options was chosen. With eps inside the log, one
    option chosen every time gives -log(1 + eps) / log 3 ~ -9e-13, not exactly 0, as the paper's
    formula says; the normaliser is log 3 whatever the length of ``counts``.
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        raise ValueError("balance score of an empty distribution")
    p = counts / total
    return float(-(p * np.log(p + eps)).sum() / np.log(3.0))


def safe_ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, 0 when the denominator is 0 (precision of a class never predicted)."""
    return numerator / denominator if denominator else 0.0


def precision_recall_f1(true_positive: float, predicted: float, actual: float) -> tuple[float, float, float]:
    """P = TP / #predicted as c, R = TP / #truly c, F1 = 2PR / (P + R); each 0 where undefined."""
    precision = safe_ratio(true_positive, predicted)
    recall = safe_ratio(true_positive, actual)
    return precision, recall, safe_ratio(2 * precision * recall, precision + recall)


def macro_mean(values: Sequence[float]) -> float:
    """Unweighted mean over classes (or categories): each counts the same whatever its size."""
    if not values:
        raise ValueError("mean of no values")
    return float(sum(values) / len(values))
