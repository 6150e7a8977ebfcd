"""Generation engines: sampling completions from a policy, for training, evaluation and pretraining.

* ``engine.py``: the engine protocol (:class:`RolloutEngine`) and what crosses it
  (:class:`RolloutPrompt`, :class:`SamplingParams`, :class:`RolloutResult`).
* ``hf.py``: :class:`HFRolloutEngine`, sampling with Hugging Face ``generate``.

The config's ``rollout.engine`` names an engine registered through the ``register_rollout_engines``
hook (the built-in ``hf`` in ``fadtq_plugins.rollout_engines``). Not to be confused with
:class:`fadtq.rollout.Rollout`, the scored record that rewards see.
"""
