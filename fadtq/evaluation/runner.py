"""Evaluating a model (resumable) or a predictions file, on a benchmark split or an MMAD file.

A model is a local folder, generating through training's rollout engine, or a model behind an
OpenAI-compatible server (:mod:`fadtq.evaluation.backends`); either is asked with the training
prompts, so a model is asked exactly what it was trained on (an MMAD file's questions are asked
by ``--protocol``: MMAD's own request, or the project's); decoding is greedy unless sampling is
asked for (locally). Answers are appended to ``predictions.jsonl`` as they come and
``eval_config.json`` records what produced them: an interrupted evaluation continues where it
stopped, and resuming with a different model, benchmark or decoding is refused rather than mixed.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from fadtq.data.dataset import (DEFAULT_MAX_SIDE, INPUTS_FILE, ImageCache, PairDataset, decode_images,
                                resolve_benchmark, trained_image_size)
from fadtq.data.mmad_file import check_template, read_mmad, summary_type
from fadtq.data.pair3c import SPLITS, read_manifest
from fadtq.errors import FadtqError
from fadtq.evaluation import mmad_protocol, mmad_scores
from fadtq.evaluation.backends import LocalModel, ServedModel
from fadtq.evaluation.mmad_answers import read_answers
from fadtq.evaluation.predictions import (
    METRICS,
    PREDICTIONS,
    append_rows,
    from_completion,
    import_predictions,
    load_resumable,
    round_robin,
    select_rows,
    write_metrics,
)
from fadtq.files import atomic_write_json, atomic_write_jsonl, check_output_dir, entries, listed, read_json
from fadtq.folder_lock import LOCK_FILE
from fadtq.openai_client import EndpointConfig
from fadtq.plugin_manager import default_plugins
from fadtq.prompts import MMAD_TEMPLATE, POLICY_TEMPLATE, PromptLibrary, mmad_question, pair_messages, policy_messages
from fadtq.scoring_checks import render_templates

EVAL_CONFIG = "eval_config.json"
OUTPUT_FILES = (PREDICTIONS, METRICS, EVAL_CONFIG)
MMAD_OUTPUT_FILES = (PREDICTIONS, mmad_scores.METRICS, EVAL_CONFIG)
# Images an MMAD evaluation keeps decoded: its questions come image by image, and it reads thousands.
MMAD_IMAGE_CACHE = 256
Backend = LocalModel | ServedModel


@dataclass(frozen=True)
class GenerationSettings:
    batch_size: int = 8
    max_new_tokens: int = 128
    sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    # Longest image side before the processor; None: the size the model was trained at (its
    # fadtq_inputs.json), else PairDataset's default. ``for_model`` resolves it.
    image_size: int | None = None
    engine: str = "hf"  # a registered rollout engine (register_rollout_engines), with its default options

    def for_model(self, model_path: Path) -> GenerationSettings:
        """These settings with the image size resolved for the model at ``model_path``."""
        if self.image_size is not None:
            return self
        return replace(self, image_size=trained_image_size(model_path) or DEFAULT_MAX_SIDE)

    def validate(self) -> None:
        for flag, value in (("--batch-size", self.batch_size), ("--max-new-tokens", self.max_new_tokens),
                            ("--image-size", self.image_size)):
            if value is not None and value < 1:
                raise FadtqError(f"{flag} {value}: expected at least 1")
        if self.sample and not (self.temperature > 0 and 0 < self.top_p <= 1):
            raise FadtqError(f"--temperature {self.temperature} --top-p {self.top_p}: expected a temperature > 0 "
                             "and 0 < top-p <= 1")
        engines = default_plugins().engines
        if self.engine not in engines:
            raise FadtqError(f"--engine {self.engine}: unknown rollout engine; known: {', '.join(engines.names())}")

    def check_engine(self, model_path: Path) -> None:
        """The engine can run the model at ``model_path`` (one line naming the problem otherwise)."""
        from transformers import AutoConfig

        engine = default_plugins().engines.get(self.engine)
        if engine.check is not None:
            engine.check(AutoConfig.from_pretrained(str(model_path)).to_dict(), f"--model {model_path}")


def _benchmark(benchmark_dir: str | Path | None, split: str) -> tuple[Path, Path]:
    """(benchmark folder, manifest of ``split``) of the ``--benchmark`` and ``--split`` flags."""
    if split not in SPLITS:
        raise FadtqError(f"--split {split}: expected one of {', '.join(SPLITS)}")
    return resolve_benchmark(benchmark_dir, split, "--benchmark")


def _source(kind: str, benchmark: Path, split: str, limit: int | None, **fields: str) -> dict:
    return {"kind": kind, "benchmark": str(benchmark.resolve()), "split": split, "limit": limit, **fields}


def evaluate_file(predictions: str | Path, benchmark_dir: str | Path | None, out_dir: str | Path, *,
                  split: str = "test", limit: int | None = None, tokenizer_path: str | Path | None = None,
                  name: str | None = None, overwrite: bool = False) -> dict:
    """Metrics of predictions made elsewhere; ``tokenizer_path`` enables reasoning lengths in tokens."""
    benchmark, manifest = _benchmark(benchmark_dir, split)
    out_dir = claim_out(out_dir, OUTPUT_FILES, overwrite)
    rows = select_rows(read_manifest(manifest), limit)
    tokenizer = None
    if tokenizer_path is not None:
        if not Path(tokenizer_path).is_dir():
            raise FadtqError(f"--tokenizer {tokenizer_path}: not a folder (expected a model or tokenizer folder)")
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_path))
    records = import_predictions(Path(predictions), rows, tokenizer)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_jsonl(out_dir / PREDICTIONS, records)
    source = _source("predictions", benchmark, split, limit, predictions=str(Path(predictions).resolve()))
    return write_metrics(out_dir, records, name or Path(predictions).stem, source)


def backend_for(model: str | Path | EndpointConfig) -> Backend:
    """A served model for an endpoint, else the local model folder ``model``."""
    return ServedModel(model) if isinstance(model, EndpointConfig) else LocalModel(model)


@dataclass
class Questions:
    """What an evaluation asks: its rows in evaluation order, ``known`` (every id of the split or
    file: a saved answer with another id is another benchmark's), the chat messages of a row
    (``messages``; reference image, then test image), the record of an answer (``record(row,
    completion, tokenizer, **extra)``) and the images, loaded only when something is asked.
    ``templates`` are the prompt templates the messages render; ``unit`` names a row on the
    progress bar."""

    rows: list[dict]
    known: set[str]
    source: Path
    prompts: PromptLibrary
    templates: tuple[str, ...]
    messages: Callable[[dict], list[dict]]
    record: Callable[..., dict]
    load_images: Callable[[], ImageCache]
    unit: str

    @functools.cached_property
    def images(self) -> ImageCache:
        return self.load_images()

    def prompt(self, row: dict) -> tuple[object, object, list[dict]]:
        """(reference image, test image, messages) of a row. A row with no reference (MMAD 0-shot)
        gives (test image, None, messages): a served model's request takes the images in the order
        its messages show them."""
        test = self.images.image(row["test_image"])
        if row["ref_image"] is None:
            return test, None, self.messages(row)
        return self.images.image(row["ref_image"]), test, self.messages(row)


def evaluate(model: str | Path | EndpointConfig, benchmark_dir: str | Path | None, out_dir: str | Path, *,
             split: str = "test", settings: GenerationSettings = GenerationSettings(),
             limit: int | None = None, name: str | None = None, overwrite: bool = False) -> dict:
    """Answer the benchmark split's missing pairs with ``model`` (a model folder, or a served model)
    into ``out_dir`` (see :func:`claim_out`), then write the metrics.

    Everything is checked before the model loads (settings, output folder, manifest, every image
    to evaluate, the prompt), and ``out_dir`` is written to only once the model is ready."""
    backend = backend_for(model)
    settings.validate()
    benchmark, manifest = _benchmark(benchmark_dir, split)
    settings = backend.resolve(settings)
    config = {**backend.identity(), "benchmark": str(benchmark.resolve()), "split": split, **asdict(settings)}
    out_dir = claim_out(out_dir, OUTPUT_FILES, overwrite, config)
    all_rows = read_manifest(manifest)
    prompts = PromptLibrary()
    questions = Questions(
        rows=select_rows(all_rows, limit), known={row["id"] for row in all_rows}, source=manifest, prompts=prompts,
        templates=(POLICY_TEMPLATE,), messages=lambda row: policy_messages(prompts, row["category"]),
        record=from_completion,
        load_images=lambda: PairDataset(manifest, max_side=settings.image_size, prompts=prompts).images, unit="pair")
    records, server = _answer(backend, questions, settings, out_dir, config, overwrite)
    if not records:
        raise _nothing_answered(server)
    source = _source(backend.kind, benchmark, split, limit, **backend.identity())
    return write_metrics(out_dir, records, name or backend.name, source, **server)


def evaluate_mmad(model: str | Path | EndpointConfig, mmad_file: str | Path, root: str | Path | None,
                  out_dir: str | Path, *, settings: GenerationSettings = GenerationSettings(),
                  limit: int | None = None, name: str | None = None, protocol: str | None = None,
                  template: str = "random", overwrite: bool = False) -> dict:
    """Answer an MMAD file's missing questions with ``model`` into ``out_dir``, then write its
    summary (``mmad_metrics.json``). ``root`` holds the images (default: the file's folder, as
    MMAD ships ``mmad.json``); ``limit`` takes a round robin over (dataset, category, question type).

    ``protocol``: ``mmad`` asks and reads as MMAD's scripts (:mod:`fadtq.evaluation.mmad_protocol`),
    ``fadtq`` with the project's MMAD prompt and strict reading; by default ``fadtq`` for the
    project's own policies (see :func:`_default_protocol`), else ``mmad``. ``template``: the
    reference, the first of ``random_templates`` (MMAD's default), of ``similar_templates``, or
    ``none`` (0-shot, ``mmad`` protocol and a served model only)."""
    backend = backend_for(model)
    settings.validate()
    _check_protocol(protocol, template, backend)  # the flags given, before anything is read
    mmad_file = Path(mmad_file)
    root = Path(root) if root is not None else mmad_file.parent
    settings = backend.resolve(settings)
    protocol = protocol or _default_protocol(backend)
    _check_protocol(protocol, template, backend)  # and the default protocol
    config = {**backend.identity(), "mmad": str(mmad_file.resolve()), "root": str(root.resolve()),
              "protocol": protocol, "template": template, **asdict(settings)}
    out_dir = claim_out(out_dir, MMAD_OUTPUT_FILES, overwrite, config)
    all_rows = read_mmad(mmad_file, root, template)
    if protocol == "mmad":
        all_rows = [mmad_protocol.relettered(row) for row in all_rows]
    rows = all_rows
    if limit is not None:  # else in file order: an image's questions one after another, for the image cache
        rows = round_robin(all_rows, lambda row: (row["dataset"], row["category"], summary_type(row["type"])))[:limit]
    prompts = PromptLibrary()
    questions = Questions(
        rows=rows, known={row["id"] for row in all_rows}, source=mmad_file, prompts=prompts,
        **_mmad_asking(protocol, prompts), record=functools.partial(mmad_scores.mmad_record, protocol=protocol),
        load_images=lambda: ImageCache(root, settings.image_size, MMAD_IMAGE_CACHE), unit="question")
    records, server = _answer(backend, questions, settings, out_dir, config, overwrite)
    if not records:
        raise _nothing_answered(server)
    source = {"kind": backend.kind, "mmad": config["mmad"], "root": config["root"], "limit": limit,
              "protocol": protocol, "template": template, **backend.identity()}
    metrics = {"name": name or backend.name, "source": source, **mmad_scores.mmad_metrics(records), **server}
    atomic_write_json(out_dir / mmad_scores.METRICS, metrics)
    return metrics


def _check_protocol(protocol: str | None, template: str, backend: Backend) -> None:
    """``--protocol`` and ``--template`` name known choices that go together and with the model."""
    if protocol is not None and protocol not in mmad_scores.PROTOCOLS:
        raise FadtqError(f"--protocol {protocol}: expected one of {', '.join(mmad_scores.PROTOCOLS)}")
    check_template(template)
    if template == "none" and isinstance(backend, LocalModel):
        raise FadtqError("--template none: only with --server (a local model is asked about two images)")
    if template == "none" and protocol == "fadtq":
        raise FadtqError("--template none: not with --protocol fadtq (its prompt compares with a reference image; "
                         "fadtq is the default for the project's own policies)")


def _default_protocol(backend: Backend) -> str:
    """``fadtq`` for the project's own policies: a local folder, or a folder that records the
    policy's inputs (``fadtq_inputs.json``) served by ``make policy-server``; ``mmad`` for any
    other served model, which is what MMAD's published results are."""
    if isinstance(backend, LocalModel):
        return "fadtq"
    root = backend.served_root()
    return "fadtq" if root is not None and (Path(root) / INPUTS_FILE).is_file() else "mmad"


def _mmad_asking(protocol: str, prompts: PromptLibrary) -> dict:
    """The ``templates`` and ``messages`` of Questions for an MMAD protocol."""
    if protocol == "mmad":
        return {"templates": (), "messages": mmad_protocol.messages}
    return {"templates": (MMAD_TEMPLATE,),
            "messages": lambda row: pair_messages(mmad_question(prompts, row["question"], row["options"]))}


def evaluate_mmad_answers(answers: str | Path, mmad_file: str | Path, out_dir: str | Path, *,
                          name: str | None = None, overwrite: bool = False) -> dict:
    """Score an answer file of MMAD's own scripts (:mod:`fadtq.evaluation.mmad_answers`) against
    the MMAD file, with the summary of :func:`evaluate_mmad`; no image is read."""
    answers, mmad_file = Path(answers), Path(mmad_file)
    out_dir = claim_out(out_dir, MMAD_OUTPUT_FILES, overwrite)
    rows = [mmad_protocol.relettered(row) for row in read_mmad(mmad_file, None, "none")]
    records, unanswered = read_answers(answers, rows)
    if not records:
        raise FadtqError(f"{answers}: no answer records (expected a list of MMAD answer records)")
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_jsonl(out_dir / PREDICTIONS, records)
    source = {"kind": "mmad answers", "predictions": str(answers.resolve()), "mmad": str(mmad_file.resolve()),
              "protocol": "mmad"}
    metrics = {"name": name or answers.stem, "source": source, "unanswered": unanswered,
               **mmad_scores.mmad_metrics(records)}
    atomic_write_json(out_dir / mmad_scores.METRICS, metrics)
    return metrics


def _image_rows(rows: list[dict]) -> list[dict]:
    """``rows`` as ``decode_images`` reads them (a reference and a test image each): a row with no
    reference (MMAD 0-shot) has its test image twice."""
    return [{"ref_image": row["ref_image"] or row["test_image"], "test_image": row["test_image"]} for row in rows]


def _answer(backend: Backend, questions: Questions, settings: GenerationSettings, out_dir: Path,
            config: dict, overwrite: bool) -> tuple[list[dict], dict]:
    """The records of ``questions.rows`` that have an answer, in order: those saved in
    ``predictions.jsonl``, then the missing ones asked now; and, for a server, its request counts.
    With ``overwrite`` the saved ones are dropped. An attempt that saves nothing (a server down,
    every request failing) removes the files it began, so the same command can be given again."""
    done = {} if overwrite else _done_records(out_dir / PREDICTIONS, questions)
    todo = [row for row in questions.rows if row["id"] not in done]
    server = {}
    if todo:
        render_templates(questions.prompts, questions.templates)
        decode_images(questions.images, _image_rows(todo))
        backend.start(settings)
        fresh = not done
        try:
            failures = _ask(backend, questions, todo, settings, out_dir, config, done, overwrite)
        finally:
            if fresh and not done:
                for name in (PREDICTIONS, EVAL_CONFIG):
                    (out_dir / name).unlink(missing_ok=True)
        if isinstance(backend, ServedModel):
            server = {"server": _server_counts(backend, failures)}
    return [done[row["id"]] for row in questions.rows if row["id"] in done], server


def _ask(backend: Backend, questions: Questions, todo: list[dict], settings: GenerationSettings, out_dir: Path,
         config: dict, done: dict[str, dict], overwrite: bool) -> Counter[str]:
    """Ask ``todo``, appending each answer to ``predictions.jsonl`` as it is saved (and to
    ``done``; with ``overwrite`` the file starts empty); ``out_dir`` and its ``eval_config.json``
    appear once the model is ready."""
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / EVAL_CONFIG, config)
    already = len(questions.rows) - len(todo)
    bar = tqdm(total=len(questions.rows), initial=already, desc="eval", unit=questions.unit, dynamic_ncols=True)
    with (out_dir / PREDICTIONS).open("w" if overwrite else "a", encoding="utf-8") as handle, bar:

        def save(records: list[dict]) -> None:
            append_rows(handle, records)
            done.update((record["id"], record) for record in records)
            bar.update(len(records))

        return backend.answer(questions, todo, settings, save, already)


def _server_counts(backend: ServedModel, failures: Counter[str]) -> dict:
    counts = backend.client.counts
    return {"requests": counts["requests"], "retries": counts["retries"], "failed": sum(failures.values()),
            "failed_by_kind": dict(sorted(failures.items()))}


def _nothing_answered(server: dict) -> FadtqError:
    counts = server.get("server", {})
    return FadtqError(f"--server: every request failed ({counts.get('failed_by_kind')}); nothing to score. "
                      "Run the same command again once the server answers")


def claim_out(out_dir: str | Path, files: tuple[str, ...], overwrite: bool, config: dict | None = None) -> Path:
    """``out_dir`` checked before anything is read: files no evaluation wrote, or an earlier
    evaluation this one would not continue, are refused unless ``overwrite`` (which replaces the
    evaluation's own files and leaves the others). An evaluation by a model continues an earlier one
    made with the same ``config`` (written, once generation starts, to ``eval_config.json``): the
    server's address and the batch size may change."""
    out_dir = check_output_dir(out_dir, "--out", files)
    if overwrite or not out_dir.is_dir():
        return out_dir
    others = entries(out_dir, besides=(*files, LOCK_FILE))
    if others:
        raise FadtqError(f"--out {out_dir}: holds other files ({listed(others)}); choose a new or empty folder, or give "
                         "--overwrite to write the evaluation beside them")
    earlier = [name for name in files if (out_dir / name).is_file()]
    if earlier and config is None:
        raise FadtqError(f"--out {out_dir}: holds an earlier evaluation ({', '.join(earlier)}); choose another "
                         "--out, or give --overwrite to replace it")
    if (out_dir / PREDICTIONS).is_file():
        _check_continued(out_dir, config)
    return out_dir


def _check_continued(out_dir: Path, config: dict) -> None:
    path = out_dir / EVAL_CONFIG
    if not path.is_file():
        raise FadtqError(f"--out {out_dir}: holds {PREDICTIONS} without {EVAL_CONFIG} (not made by a model's "
                         "evaluation); choose another --out, or give --overwrite to replace it")
    previous = {"engine": "hf", **read_json(path, "give --overwrite to start over")}  # hf before engines were recorded
    changed = sorted(k for k in config if k not in {"batch_size", "server"} and previous.get(k) != config[k])
    if changed:
        key = changed[0]
        raise FadtqError(f"--out {out_dir}: holds predictions made with {key}={previous.get(key)!r}, "
                         f"now {config[key]!r}; choose another --out, or give --overwrite to start over")


def _done_records(path: Path, questions: Questions) -> dict[str, dict]:
    """Records already made for ``questions.rows``, by id; an id not in the split means another benchmark."""
    done = {}
    for record in load_resumable(path):
        if record.get("id") not in questions.known:
            raise FadtqError(f"{path}: id {record.get('id')!r} is not in {questions.source}; choose another --out")
        done[record["id"]] = record
    wanted = {row["id"] for row in questions.rows}
    return {key: record for key, record in done.items() if key in wanted}
