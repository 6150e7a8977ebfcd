"""What answers an evaluation's questions: a local model folder or a model behind a chat endpoint.

Both ask every question the same way: the chat messages of training (``fadtq.prompts``:
reference image, test image, question), read with the same parsers. :class:`LocalModel`
generates with training's rollout engine, in batches. :class:`ServedModel` sends the messages to
an OpenAI-compatible server (vLLM's API server serves any VLM this way), the two images as base64
PNG data URLs in the same order, greedily, ``max_in_flight`` requests at a time through
:mod:`fadtq.openai_client`. A request that fails after its retries is counted and gives no
record: the question stays unanswered, left out of the metrics, and is asked again on resume.
"""

from __future__ import annotations

import base64
import io
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from fadtq.data.dataset import DEFAULT_MAX_SIDE, trained_image_size
from fadtq.errors import FadtqError
from fadtq.openai_client import ChatClient, EndpointConfig, Failed, Reply, RequestError
from fadtq.policy.weights_file import weights_problem
from fadtq.serving.names import policy_name, served_name

if TYPE_CHECKING:
    from PIL import Image

    from fadtq.evaluation.runner import GenerationSettings, Questions

Save = Callable[[list[dict]], None]


class LocalModel:
    """A Hugging Face model folder, generating with training's rollout engine."""

    kind = "model"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = policy_name(self.path)
        self.tokenizer = None

    def identity(self) -> dict:
        return {"model": str(self.path.resolve())}

    def resolve(self, settings: GenerationSettings) -> GenerationSettings:
        """``settings`` with the image size the model was trained at, unless one is given; the
        rollout engine they name is checked against the model."""
        if not (self.path / "config.json").is_file():
            raise FadtqError(f"--model {self.path}: no config.json; expected a Hugging Face model folder")
        problem = weights_problem(self.path)
        if problem:
            raise FadtqError(f"--model {problem}")
        settings.check_engine(self.path)
        return settings.for_model(self.path)

    def start(self, settings: GenerationSettings) -> None:
        """Load the model and build the rollout engine ``settings`` names."""
        import torch
        from transformers import AutoModelForImageTextToText

        from fadtq.plugin_manager import default_plugins
        from fadtq.policy.processor import load_processor

        processor = load_processor(self.path)
        model = AutoModelForImageTextToText.from_pretrained(str(self.path))
        if torch.cuda.is_available():  # the engine sends its inputs to wherever the model is
            model = model.to("cuda")
        self.engine = default_plugins().engines.get(settings.engine).build(model, processor)
        self.tokenizer = processor.tokenizer

    def answer(self, questions: Questions, todo: list[dict], settings: GenerationSettings, save: Save,
               already: int) -> Counter[str]:
        """Answer ``todo`` in batches, saving each batch; returns no failures (an error stops the run)."""
        import torch

        from fadtq.generation.engine import RolloutPrompt, SamplingParams

        params = SamplingParams(temperature=settings.temperature, top_p=settings.top_p,
                                max_new_tokens=settings.max_new_tokens, greedy=not settings.sample)
        for start in range(0, len(todo), settings.batch_size):
            batch = todo[start:start + settings.batch_size]
            prompts = [RolloutPrompt(*questions.prompt(row)) for row in batch]
            torch.manual_seed(settings.seed * 1_000_003 + already + start)
            result = self.engine.generate(prompts, 1, params)
            save([questions.record(row, group[0].text, self.tokenizer, completion_tokens=len(group[0].completion_ids),
                                   finished=group[0].finished)
                  for row, group in zip(batch, result.groups, strict=True)])
        return Counter()


class ServedModel:
    """A model behind an OpenAI-compatible chat endpoint, asked greedily (temperature 0)."""

    kind = "server"

    def __init__(self, endpoint: EndpointConfig) -> None:
        self.client = ChatClient(endpoint)
        self.name = served_name(endpoint.model)
        self.tokenizer = None

    @property
    def endpoint(self) -> EndpointConfig:
        return self.client.config

    def identity(self) -> dict:
        return {"model": self.endpoint.model, "server": self.endpoint.base_urls[0]}

    def resolve(self, settings: GenerationSettings) -> GenerationSettings:
        """``settings`` with the image size the served policy was trained at when the server serves
        it from a folder on this machine that records one (``make policy-server``: vLLM lists the
        folder as the model's ``root``), else the default size; ``--image-size`` wins."""
        if settings.sample:
            raise FadtqError("--sample: not with --server (a served model is evaluated greedily)")
        if settings.engine != "hf":
            raise FadtqError(f"--engine {settings.engine}: not with --server (the server generates)")
        if settings.image_size is not None:
            return settings
        root = self.served_root()
        trained = trained_image_size(root) if root is not None and Path(root).is_dir() else None
        return replace(settings, image_size=trained or DEFAULT_MAX_SIDE)

    def served_root(self) -> str | None:
        """What the server serves the model from: one line now if it does not answer or does not
        serve the model, not a failure per question."""
        url = self.endpoint.base_urls[0]
        try:
            served = self.client.served_models()
        except RequestError as exc:
            raise FadtqError(f"--server {url}: no answer at {url}/models ({exc.kind}: {exc})") from None
        if self.endpoint.model not in served:
            raise FadtqError(f"--model {self.endpoint.model}: not served by {url} (it serves: {', '.join(served)})")
        return served[self.endpoint.model]

    def start(self, settings: GenerationSettings) -> None:
        """The server still answers and serves the model, right before the questions go out."""
        self.served_root()

    def answer(self, questions: Questions, todo: list[dict], settings: GenerationSettings, save: Save,
               already: int) -> Counter[str]:
        """Ask every question of ``todo``, saving each answer as it comes; returns the failures by kind."""
        failures: Counter[str] = Counter()

        def on_reply(index: int, reply: Reply | Failed) -> None:
            if isinstance(reply, Failed):
                failures[reply.kind] += 1
                return
            save([questions.record(todo[index], reply.text, None, completion_tokens=reply.completion_tokens,
                                   finished=reply.finished)])

        bodies = (self.body(*questions.prompt(row), max_tokens=settings.max_new_tokens) for row in todo)
        self.client.complete_all(bodies, on_reply)
        return failures

    def body(self, ref_image: Image.Image, test_image: Image.Image, messages: list[dict], *, max_tokens: int) -> dict:
        return {"model": self.endpoint.model, "messages": openai_messages(messages, [ref_image, test_image]),
                "temperature": 0.0, "max_tokens": max_tokens}


def openai_messages(messages: list[dict], images: Sequence[Image.Image]) -> list[dict]:
    """Hugging Face multimodal chat messages in the OpenAI format: each ``{"type": "image"}`` part
    becomes the next of ``images`` as a base64 PNG data URL, in order."""
    pending = iter(images)
    converted = []
    for message in messages:
        content = [{"type": "image_url", "image_url": {"url": png_data_url(next(pending))}}
                   if part["type"] == "image" else {"type": "text", "text": part["text"]}
                   for part in message["content"]]
        converted.append({"role": message["role"], "content": content})
    return converted


def png_data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
