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
            if not isinstance(row[name], str):
                raise FadtqError(f"{where}: field {name!r}: expected a string, got {row[name]!r}")
        for name in ("id", "group"):
            if not row[name].strip():
                raise FadtqError(f"{where}: field {name!r}: expected a non-empty string")
        for name in ("ref_image", "test_image"):
            if row.get(name) is not None and not isinstance(row[name], str):
                raise FadtqError(f"{where}: field {name!r}: expected a string or null, got {row[name]!r}")
        if row["label"] not in CLASS_NAMES:
            raise FadtqError(f"{where}: field 'label' is {row['label']!r}, expected one of {', '.join(CLASS_NAMES)}")
        known = set(REQUIRED_FIELDS) | {"ref_image", "test_image"}
        return cls(
            id=row["id"],
            group=row["group"],
            prompt=row["prompt"],
            completion=row["completion"],
            label=row["label"],
            category=row["category"],
            ref_image=row.get("ref_image"),
            test_image=row.get("test_image"),
            extra={k: v for k, v in row.items() if k not in known},
        )

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        extra = row.pop("extra")
        return {**{k: v for k, v in row.items() if v is not None}, **extra}
