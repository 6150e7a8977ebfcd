"""Generation engines: sampling completions from a policy, for training, evaluation and pretraining.

* ``engine.py``: the engine protocol (:class:`RolloutEngine`) and what crosses it
  (:class:`RolloutPrompt`, :class:`SamplingParams`, :class:`RolloutResult`).
* ``hf.py``: :class:`HFRolloutEngine`, sampling with Hugging Face ``generate``.

``ROLLOUT_ENGINES`` maps the config's ``rollout.engine`` to an engine class. Not to be confused
with :class:`fadtq.rollout.Rollout`, the scored record that rewards see.
"""

from fadtq.generation.hf import HFRolloutEngine

# rollout.engine -> engine class; a vLLM engine for GPU machines registers here the same way.
ROLLOUT_ENGINES: dict[str, type] = {"hf": HFRolloutEngine}
