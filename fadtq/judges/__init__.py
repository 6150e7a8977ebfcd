"""Judging: what every judge plugin shares, and the tools to run model judges.

* ``protocol.py``: from rollouts to judge inputs (``judge_item``), the judge prompts
  (``judge_messages``), strict reply parsing (``parse_verdict``) and judge scores as rewards
  (``judged_reward``). The types that cross the plugin boundary (``Judge``, ``JudgeItem``,
  ``Verdict``) are in :mod:`fadtq.api`.
* ``options.py``: validation of a judge's ``judge.options`` (``JudgeOptions``).
* ``cache.py``: the verdict cache of the model judges (memory, and SQLite with ``cache_path``).
* ``server.py``: a local OpenAI-compatible judge server, vLLM in its own venv
  (``make judge-server``; notes in ``docs/judge-server.md``).
* ``tiny_qwen3.py``: the tiny offline Qwen3-style judge model it serves by default.

The judges themselves are plugins: ``plugins/judge_heuristic.py``, ``judge_openai.py`` and
``judge_hf.py``.
"""
