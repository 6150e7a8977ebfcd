"""The processed images of a batch in one layout for every model family.

Families hand their images to the model in different shapes: Qwen's processors flatten every
image's patches into one ``(patches, features)`` tensor beside a per-image ``image_grid_thw``;
SmolVLM's pad a ``(rows, images, 3, H, W)`` tensor and a pixel mask. The engines, the prompt cache
and the trainer select, compare and stack images without knowing which: here an image is one
entry of the ``per_image`` tensors and ``patches[i]`` consecutive entries of the ``per_patch``
ones, and the family converts to and from its model's keyword arguments
(``ModelFamily.image_tensors`` and ``ModelFamily.image_kwargs``).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass
class ImageTensors:
    """Images one after another: ``per_patch`` tensors hold ``patches[i]`` leading entries for image
    ``i``, ``per_image`` tensors one."""

    per_patch: dict[str, torch.Tensor]
    per_image: dict[str, torch.Tensor]
    patches: torch.Tensor

    def __len__(self) -> int:
        return len(self.patches)

    def select(self, images: Sequence[int]) -> ImageTensors:
        """Images ``images``, in that order (repeats allowed)."""
        spans = self.spans
        patch_rows = torch.as_tensor([p for i in images for p in spans[i]], dtype=torch.long)
        index = torch.as_tensor(list(images), dtype=torch.long)
        return ImageTensors(per_patch={k: v[patch_rows.to(v.device)] for k, v in self.per_patch.items()},
                            per_image={k: v[index.to(v.device)] for k, v in self.per_image.items()},
                            patches=self.patches[index.to(self.patches.device)])

    def same(self, i: int, j: int) -> bool:
        """Whether images ``i`` and ``j`` are the same tensors."""
        spans = self.spans
        return (all(torch.equal(v[i], v[j]) for v in self.per_image.values())
                and len(spans[i]) == len(spans[j])
                and all(torch.equal(v[spans[i].start:spans[i].stop], v[spans[j].start:spans[j].stop])
                        for v in self.per_patch.values()))

    def checksum(self, i: int) -> float:
        """A cheap summary of image ``i`` (equal images have equal checksums)."""
        span = self.spans[i]
        return sum(float(v[span.start:span.stop].float().sum()) for v in self.per_patch.values())

    @classmethod
    def cat(cls, parts: Sequence[ImageTensors]) -> ImageTensors:
        first = parts[0]
        return cls(per_patch={k: torch.cat([p.per_patch[k] for p in parts]) for k in first.per_patch},
                   per_image={k: torch.cat([p.per_image[k] for p in parts]) for k in first.per_image},
                   patches=torch.cat([p.patches for p in parts]))

    @functools.cached_property
    def spans(self) -> list[range]:
        """Each image's entries of the ``per_patch`` tensors (computed once: distinct images and
        prompts ask for them image by image)."""
        sizes = self.patches.tolist()
        return [range(end - size, end) for end, size in zip(itertools.accumulate(sizes), sizes)]
