"""Serving models over vLLM's OpenAI-compatible API.

* ``vllm_server.py``: start, health-check and stop a vLLM server (every server the project runs).
* ``policy_server.py``: serve a policy checkpoint the trainer wrote (``make policy-server``).
"""
