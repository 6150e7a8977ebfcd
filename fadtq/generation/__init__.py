"""Generation engines: sampling completions from a policy, for training, evaluation and pretraining.

* ``sampling.py``: :class:`Sampling`, the sampling settings, declared once (the config's
  ``rollout`` section extends it).
* ``engine.py``: the engine protocol (:class:`RolloutEngine`) and what crosses it
  (:class:`RolloutPrompt`, :class:`SamplingParams`, :class:`RolloutResult`).
* ``batch.py``: the prompt and forward tensors every engine builds the same way.
* ``hf.py``: :class:`HFRolloutEngine`, sampling with Hugging Face ``generate``.
* ``span_top_p.py``: top-p with its own threshold for the reasoning and for the answer word.
* ``vllm.py`` and ``vllm_compat.py``: the in-process vLLM engine, and what vLLM needs without torchvision.

The config's ``rollout.engine`` names an engine registered through the ``register_rollout_engines``
hook (the built-in ``hf`` in ``fadtq_plugins.rollout_engines``). Not to be confused with
:class:`fadtq.rollout.Rollout`, the scored record that rewards see. Engines build on the policy
layer (:mod:`fadtq.policy`) and never on training.
"""
