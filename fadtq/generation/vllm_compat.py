"""Running vLLM's vision-language models where torchvision cannot be imported (the CPU machines).

There is no CPU build of torchvision to be had here, and the CUDA wheels do not import next to a CPU
torch. Two parts of the vLLM + transformers stack need it for Qwen2.5-VL, though the policy never
uses video:

- transformers' ``image_processing_qwen2_vl`` module imports torchvision at the top, and vLLM imports
  ``smart_resize`` and ``Qwen2VLImageProcessor`` from it. vLLM also inspects the model class in a
  *subprocess*, so an import alias set only in the calling process is not enough. The module is
  served from the PIL image processor (same ``smart_resize``, same pixels) by an import hook
  installed here in-process and, through ``sitecustomize`` on ``PYTHONPATH``, in every Python
  process started with :func:`subprocess_env` (vLLM's helpers, a served policy).
- vLLM builds the family's full processor (``Qwen2_5_VLProcessor``), whose video processor needs
  torchvision. The processing info of every family's vLLM modules (``ModelFamily.vllm_modules``) is
  patched, when vLLM's module loads, to build the image-only processor of
  :func:`fadtq.policy.processor.load_processor` from the model folder and to declare images as
  the only modality. That processor normalises the pixels itself, so vLLM's own normalisation on
  the device is switched off (:func:`engine_args`).

Nothing is changed where torchvision works (GPU machines).
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path

from fadtq.policy.family import registered
from fadtq.policy.torchvision_check import torchvision_works

IMAGE_PROCESSING = "transformers.models.qwen2_vl.image_processing_qwen2_vl"
SITECUSTOMIZE_DIR = Path(__file__).with_name("vllm_sitecustomize")


class _TorchvisionFreeImports(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves :data:`IMAGE_PROCESSING` without torchvision and patches the families' vLLM modules
    (read once, before the finder is installed: an import from ``find_spec`` would recurse)."""

    def __init__(self) -> None:
        self.vllm_modules = _vllm_modules()

    def find_spec(self, fullname, path=None, target=None):
        if fullname == IMAGE_PROCESSING:
            return importlib.util.spec_from_loader(fullname, self)
        if fullname in self.vllm_modules:
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is not None and spec.loader is not None:
                spec.loader = _PatchAfterLoad(spec.loader)
            return spec
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        from transformers.models.qwen2_vl import image_processing_pil_qwen2_vl as pil

        module.smart_resize = pil.smart_resize
        module.Qwen2VLImageProcessor = pil.Qwen2VLImageProcessorPil
        module.__all__ = ["Qwen2VLImageProcessor", "smart_resize"]


class _PatchAfterLoad(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        self.loader.exec_module(module)
        _patch_processing_info(module)


@functools.cache
def _vllm_modules() -> frozenset[str]:
    """The vLLM model modules of every family (``ModelFamily.vllm_modules``)."""
    return frozenset(name for family in registered().values() for name in family.vllm_modules)


def _patch_processing_info(module) -> None:
    for family in registered().values():
        for name in family.vllm_processing_infos:
            if name in vars(module):
                _image_only(vars(module)[name])
                if family.vllm_patch is not None:
                    family.vllm_patch(vars(module)[name])


@functools.cache
def _image_only_processor(folder: str):
    from fadtq.policy.processor import load_processor

    return load_processor(folder)


def _image_only(info_class: type) -> None:
    def get_hf_processor(self, **kwargs):
        return _image_only_processor(self.ctx.model_config.model)

    info_class.get_hf_processor = get_hf_processor
    info_class.get_supported_mm_limits = lambda self: {"image": None}


def install() -> None:
    """Install the import hook in this process (once), unless torchvision works."""
    if any(isinstance(finder, _TorchvisionFreeImports) for finder in sys.meta_path) or torchvision_works():
        return
    sys.meta_path.insert(0, _TorchvisionFreeImports())
    for name in _vllm_modules():  # imported before the hook: patched where they are
        if name in sys.modules:
            _patch_processing_info(sys.modules[name])


def engine_args() -> dict[str, object]:
    """vLLM engine arguments the image-only processor needs: vLLM would otherwise normalise the
    pixels on the device a second time (it tells its own processor to skip that step; this one
    normalises as the policy was trained)."""
    return {} if torchvision_works() else {"mm_device_do_normalize": False}


def subprocess_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) with the hook's ``sitecustomize`` first on ``PYTHONPATH``."""
    env = dict(os.environ if env is None else env)
    paths = [str(SITECUSTOMIZE_DIR), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env
