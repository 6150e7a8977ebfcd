"""Run at the start of every Python process that has this folder on ``PYTHONPATH``: vLLM's helper
processes and a served policy get the torchvision-free imports of :mod:`fadtq.generation.vllm_compat`."""

try:
    from fadtq.generation.vllm_compat import install
except ImportError:  # an interpreter without fadtq: nothing to patch
    pass
else:
    install()
