"""The unit every reward and estimator sees: one sampled answer to one prompt."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from fadtq.errors import FadtqError
from fadtq.prompts import CLASS_NAMES

REQUIRED_FIELDS = ("id", "group", "prompt", "completion", "label", "category")


@dataclass(frozen=True)
class Rollout:
    """One completion. ``group`` ties together the rollouts sampled for the same prompt."""

    id: str
    group: str
    prompt: str
    completion: str
    label: str
    category: str
    ref_image: str | None = None
    test_image: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_row(cls, row: dict[str, Any], where: str) -> "Rollout":
        """Validate a JSON row; ``where`` (``file:line``) prefixes every error."""
        missing = [name for name in REQUIRED_FIELDS if name not in row]
        if missing:
            raise FadtqError(f"{where}: missing field(s) {', '.join(missing)}")
        for name in REQUIRED_FIELDS:
            if not isinstance(row[name], (str, int)) or isinstance(row[name], bool):
                raise FadtqError(f"{where}: field {name!r} must be a string, got {type(row[name]).__name__}")
        if row["label"] not in CLASS_NAMES:
            raise FadtqError(f"{where}: field 'label' is {row['label']!r}, expected one of {', '.join(CLASS_NAMES)}")
        known = set(REQUIRED_FIELDS) | {"ref_image", "test_image"}
        return cls(
            id=str(row["id"]),
            group=str(row["group"]),
            prompt=str(row["prompt"]),
            completion=str(row["completion"]),
            label=row["label"],
            category=str(row["category"]),
            ref_image=row.get("ref_image"),
            test_image=row.get("test_image"),
            extra={k: v for k, v in row.items() if k not in known},
        )

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        extra = row.pop("extra")
        return {**{k: v for k, v in row.items() if v is not None}, **extra}
