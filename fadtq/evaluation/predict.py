"""Evaluating a model (batched generation, resumable) or a predictions file on a benchmark split.

Generation goes through training's rollout engine (:class:`~fadtq.generation.hf.HFRolloutEngine`)
with the training prompts, so a model is asked exactly what it was trained on; decoding is greedy
unless sampling is asked for. ``eval_config.json`` records what produced ``predictions.jsonl``:
resuming with a different model, benchmark or decoding is refused rather than mixed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

from fadtq.data.dataset import DEFAULT_MAX_SIDE, PairDataset, resolve_benchmark, trained_image_size
from fadtq.data.pair3c import SPLITS, read_manifest
from fadtq.errors import FadtqError
from fadtq.evaluation.predictions import (
    METRICS,
    PREDICTIONS,
    append_rows,
    from_completion,
    import_predictions,
    load_resumable,
    select_rows,
    write_metrics,
)
from fadtq.files import atomic_write_json, atomic_write_jsonl, check_output_dir, read_json
from fadtq.plugin_manager import default_plugins
from fadtq.preflight import decode_images, render_templates
from fadtq.prompts import POLICY_TEMPLATE

EVAL_CONFIG = "eval_config.json"
OUTPUT_FILES = (PREDICTIONS, METRICS, EVAL_CONFIG)


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


def _source(kind: str, benchmark: Path, split: str, limit: int | None, **paths: Path) -> dict:
    return {"kind": kind, "benchmark": str(benchmark.resolve()), "split": split, "limit": limit,
            **{key: str(Path(value).resolve()) for key, value in paths.items()}}


def evaluate_file(predictions: str | Path, benchmark_dir: str | Path | None, out_dir: str | Path, *,
                  split: str = "test", limit: int | None = None, tokenizer_path: str | Path | None = None,
                  name: str | None = None) -> dict:
    """Metrics of predictions made elsewhere; ``tokenizer_path`` enables reasoning lengths in tokens."""
    benchmark, manifest = _benchmark(benchmark_dir, split)
    out_dir = check_output_dir(out_dir, "--out", OUTPUT_FILES)
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
    source = _source("predictions", benchmark, split, limit, predictions=Path(predictions))
    return write_metrics(out_dir, records, name or Path(predictions).stem, source)


def evaluate(model_path: str | Path, benchmark_dir: str | Path | None, out_dir: str | Path, *,
             split: str = "test", settings: GenerationSettings = GenerationSettings(),
             limit: int | None = None, name: str | None = None) -> dict:
    """Generate the missing predictions of ``model_path`` into ``out_dir``, then write the metrics.

    Everything is checked before the model loads (settings, output folder, manifest, every image
    to evaluate, the prompt), and ``out_dir`` is written to only once the model is ready."""
    model_path = Path(model_path)
    settings.validate()
    settings = settings.for_model(model_path)
    benchmark, manifest = _benchmark(benchmark_dir, split)
    out_dir = check_output_dir(out_dir, "--out", OUTPUT_FILES)
    if not (model_path / "config.json").is_file():
        raise FadtqError(f"--model {model_path}: no config.json; expected a Hugging Face model folder")
    settings.check_engine(model_path)
    config = {"model": str(model_path.resolve()), "benchmark": str(benchmark.resolve()), "split": split,
              **asdict(settings)}
    _check_resume(out_dir, config)
    all_rows = read_manifest(manifest)
    rows = select_rows(all_rows, limit)
    done = _done_records(out_dir / PREDICTIONS, rows, {row["id"] for row in all_rows}, manifest)
    todo = [row for row in rows if row["id"] not in done]
    if todo:
        dataset = PairDataset(manifest, max_side=settings.image_size)
        render_templates(dataset.prompts, [POLICY_TEMPLATE])
        decode_images(dataset, todo)
        for record in _generate(model_path, dataset, todo, settings, out_dir, config, len(done), len(rows)):
            done[record["id"]] = record
    source = _source("model", benchmark, split, limit, model=model_path)
    return write_metrics(out_dir, [done[row["id"]] for row in rows], name or default_name(model_path), source)


def default_name(model_path: Path) -> str:
    """A run's folder name for ``RUN/final``, else the model folder's name."""
    return model_path.parent.name if model_path.name == "final" else model_path.name


def _check_resume(out_dir: Path, config: dict) -> None:
    """Refuse to add predictions of another model or decoding to an existing ``predictions.jsonl``
    (written, with ``config``, once generation starts)."""
    path = out_dir / EVAL_CONFIG
    unchecked = {"batch_size"}
    if path.is_file() and (out_dir / PREDICTIONS).is_file():
        previous = {"engine": "hf", **read_json(path, "delete it to start over")}  # hf before engines were recorded
        changed = sorted(k for k in config if k not in unchecked and previous.get(k) != config[k])
        if changed:
            key = changed[0]
            raise FadtqError(f"--out {out_dir}: holds predictions made with {key}={previous.get(key)!r}, "
                             f"now {config[key]!r}; choose another --out or delete {PREDICTIONS}")


def _done_records(path: Path, rows: list[dict], known: set[str], manifest: Path) -> dict[str, dict]:
    """Records already made for ``rows``, by id; an id not in the split means another benchmark."""
    done = {}
    for record in load_resumable(path):
        if record.get("id") not in known:
            raise FadtqError(f"{path}: id {record.get('id')!r} is not in {manifest}; choose another --out")
        done[record["id"]] = record
    wanted = {row["id"] for row in rows}
    return {pair_id: record for pair_id, record in done.items() if pair_id in wanted}


def _generate(model_path: Path, dataset: PairDataset, todo: list[dict], settings: GenerationSettings,
              out_dir: Path, config: dict, already: int, total: int):
    """Yield a record per pair of ``todo``, appending each batch to ``predictions.jsonl`` as it is
    finished; ``out_dir`` and its ``eval_config.json`` appear once the model has loaded."""
    import torch
    from tqdm import tqdm
    from transformers import AutoModelForImageTextToText

    from fadtq.generation.engine import RolloutPrompt, SamplingParams
    from fadtq.training.processor import load_processor

    processor = load_processor(model_path)
    model = AutoModelForImageTextToText.from_pretrained(str(model_path))
    if torch.cuda.is_available():  # the engine sends its inputs to wherever the model is
        model = model.to("cuda")
    engine = default_plugins().engines.get(settings.engine).build(model, processor)
    params = SamplingParams(temperature=settings.temperature, top_p=settings.top_p,
                            max_new_tokens=settings.max_new_tokens, greedy=not settings.sample)
    index = {row["id"]: i for i, row in enumerate(dataset.rows)}
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / EVAL_CONFIG, config)
    with (out_dir / PREDICTIONS).open("a", encoding="utf-8") as handle, \
            tqdm(total=total, initial=already, desc="eval", unit="pair", dynamic_ncols=True) as bar:
        for start in range(0, len(todo), settings.batch_size):
            batch = todo[start:start + settings.batch_size]
            pairs = [dataset[index[row["id"]]] for row in batch]
            torch.manual_seed(settings.seed * 1_000_003 + already + start)
            result = engine.generate([RolloutPrompt(p.ref_image, p.test_image, p.messages) for p in pairs], 1, params)
            records = [from_completion(row, group[0].text, processor.tokenizer,
                                       completion_tokens=len(group[0].completion_ids), finished=group[0].finished)
                       for row, group in zip(batch, result.groups)]
            append_rows(handle, records)
            bar.update(len(batch))
            yield from records
