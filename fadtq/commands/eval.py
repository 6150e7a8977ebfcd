"""``fadtq eval``: the paper's metrics for a model (generated here or by a server) or for a
predictions file; or MMAD's summary for a model or for one of MMAD's own answer files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fadtq.errors import FadtqError
from fadtq.folder_lock import folder_lock


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="Hugging Face model folder (e.g. RUN/final) to generate predictions with; "
                        "with --server, the name the server serves the model under")
    source.add_argument("--predictions", help='JSONL of {"id", "completion"} or {"id", "prediction"} rows; with '
                        "--mmad, an answers_*.json file of MMAD's own scripts")
    parser.add_argument("--benchmark", help="benchmark folder with <split>.jsonl (default: for a model of a run, "
                        "RUN/final or a checkpoint's policy, the benchmark the run trained on; else the cached "
                        "look-alike)")
    parser.add_argument("--split", help="manifest to evaluate: test (default) or train")
    parser.add_argument("--mmad", metavar="FILE", help="evaluate on an MMAD question file (mmad.json) instead")
    parser.add_argument("--root", help="with --mmad: folder its image paths are relative to (default: its folder)")
    parser.add_argument("--protocol", help="with --mmad: mmad (MMAD's prompt, re-lettering and answer reading; the "
                        "default for a served model) or fadtq (the project's prompt and strict reading; the default "
                        "for the project's own policies)")
    parser.add_argument("--template", help="with --mmad: the reference image, the first of random_templates "
                        "(random, the default, as MMAD), of similar_templates (similar) or none (0-shot, --server)")
    parser.add_argument("--out", help="output folder (default: RUN/eval for RUN/final, else runs/eval/<name>; "
                        "-mmad appended with --mmad)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier evaluation in --out (one of "
                        "the same model and settings is otherwise continued), or write beside other files there")
    parser.add_argument("--name", help="name in reports (default: the run, model or predictions file name)")
    parser.add_argument("--limit", type=int, help="evaluate a stratified subset of this many pairs (questions)")
    parser.add_argument("--batch-size", type=int, help="pairs per generate call (default 8)")
    parser.add_argument("--max-new-tokens", type=int, help="completion length limit (default 128)")
    parser.add_argument("--image-size", type=int,
                        help="longest image side before the processor (default: the size the model was trained "
                        "at, recorded in its fadtq_inputs.json; else 448)")
    parser.add_argument("--engine", help="rollout engine that generates: hf (default) or vllm")
    parser.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    parser.add_argument("--temperature", type=float, help="with --sample (default 1.0)")
    parser.add_argument("--top-p", type=float, help="with --sample (default 1.0)")
    parser.add_argument("--seed", type=int, help="with --sample: seed of the sampling (default 0)")
    parser.add_argument("--tokenizer", help="with --predictions: tokenizer folder for reasoning lengths in tokens")
    served = parser.add_argument_group("a model behind an OpenAI-compatible server (vLLM)")
    served.add_argument("--server", metavar="URL", help="chat endpoint base, http://HOST:PORT/v1; --model names "
                        "the served model (greedy, --max-new-tokens as max_tokens)")
    served.add_argument("--max-in-flight", type=int, help="requests at a time (default 16)")
    served.add_argument("--api-key-env", metavar="VAR", help="environment variable holding the API key")
    served.add_argument("--timeout", type=float, help="seconds per request before it is retried (default 300)")
    served.add_argument("--max-retries", type=int,
                        help="retries of a request after connection errors, timeouts, 429 and 5xx (default 3)")


# Flags of generation (--model only), and of sampling (--sample only), by settings field.
GENERATION_FLAGS = {"batch_size": "--batch-size", "max_new_tokens": "--max-new-tokens", "image_size": "--image-size",
                    "engine": "--engine"}
SAMPLING_FLAGS = {"temperature": "--temperature", "top_p": "--top-p", "seed": "--seed"}
MMAD_FLAGS = {"root": "--root", "protocol": "--protocol", "template": "--template"}
SERVER_FLAGS = {"max_in_flight": "--max-in-flight", "api_key_env": "--api-key-env", "timeout": "--timeout",
                "max_retries": "--max-retries"}


def _given(args: argparse.Namespace, flags: dict[str, str]) -> list[str]:
    return [flag for key, flag in flags.items() if getattr(args, key) not in (None, False)]


def generation_settings(args: argparse.Namespace):
    """The settings the flags give; a flag that would be ignored is an error."""
    from fadtq.evaluation.runner import GenerationSettings

    given = {key: getattr(args, key) for key in (*GENERATION_FLAGS, *SAMPLING_FLAGS) if getattr(args, key) is not None}
    unused = [flag for key, flag in SAMPLING_FLAGS.items() if key in given and not args.sample]
    if unused:
        raise FadtqError(f"{unused[0]}: only with --sample (decoding is greedy without it)")
    if args.server and (args.sample or args.batch_size is not None):
        flag = "--sample" if args.sample else "--batch-size"
        raise FadtqError(f"{flag}: not with --server (a served model is asked greedily, --max-in-flight at a time)")
    return GenerationSettings(sample=args.sample, **given)


def endpoint(args: argparse.Namespace):
    """The server of ``--server`` and its flags."""
    from fadtq.openai_client import EndpointConfig, api_key_from_env, check_base_url

    config = EndpointConfig(
        base_urls=[check_base_url(args.server, "--server")], model=args.model,
        max_in_flight=16 if args.max_in_flight is None else args.max_in_flight,
        timeout_s=300.0 if args.timeout is None else args.timeout,
        max_retries=3 if args.max_retries is None else args.max_retries,
        api_key=api_key_from_env(args.api_key_env, "--api-key-env"))
    for flag, value, least in (("--max-in-flight", config.max_in_flight, 1), ("--max-retries", config.max_retries, 0)):
        if value < least:
            raise FadtqError(f"{flag} {value}: expected at least {least}")
    if config.timeout_s <= 0:
        raise FadtqError(f"--timeout {config.timeout_s:g}: expected a number of seconds > 0")
    return config


def default_out(args: argparse.Namespace) -> Path:
    from fadtq.serving.names import policy_name, served_name

    suffix = "-mmad" if args.mmad else ""
    if args.server:
        return Path("runs") / "eval" / ((args.name or served_name(args.model)) + suffix)
    if args.model:
        model = Path(args.model)
        if model.name == "final" and (model.parent / "metrics.jsonl").is_file():
            return model.parent / f"eval{suffix}"
        return Path("runs") / "eval" / ((args.name or policy_name(model)) + suffix)
    return Path("runs") / "eval" / ((args.name or Path(args.predictions).stem) + suffix)


def run_benchmark(model: Path) -> str | None:
    """The benchmark a trainer run recorded in ``RUN/metadata.json``, for ``RUN/final`` or
    ``RUN/checkpoints/step-N/policy``; None for a model of no run. A run's policy evaluated on another
    look-alike than the one it trained on gives a number that means nothing, without any error."""
    import json

    for run in (model.parent, model.parent.parent.parent):
        metadata = run / "metadata.json"
        if (run / "metrics.jsonl").is_file() and metadata.is_file():
            return json.loads(metadata.read_text(encoding="utf-8")).get("benchmark")
    return None


def check_flags(args: argparse.Namespace) -> None:
    """Flags that do not go together, before anything is read."""
    if args.limit is not None and args.limit < 1:
        raise FadtqError(f"--limit {args.limit}: expected at least 1")
    if args.predictions:
        given = _given(args, {**GENERATION_FLAGS, **SAMPLING_FLAGS, "sample": "--sample", "server": "--server"})
        if given:
            raise FadtqError(f"{given[0]}: only with --model")
        if args.mmad:
            _check_mmad_answers(args)
    elif args.tokenizer:
        raise FadtqError("--tokenizer: only with --predictions (a model uses its own)")
    if not args.server and _given(args, SERVER_FLAGS):
        raise FadtqError(f"{_given(args, SERVER_FLAGS)[0]}: only with --server")
    if args.mmad and _given(args, {"benchmark": "--benchmark", "split": "--split"}):
        raise FadtqError(f"{_given(args, {'benchmark': '--benchmark', 'split': '--split'})[0]}: not with --mmad "
                         "(its questions and images are the MMAD file's)")
    if not args.mmad and _given(args, MMAD_FLAGS):
        raise FadtqError(f"{_given(args, MMAD_FLAGS)[0]}: only with --mmad")


def _check_mmad_answers(args: argparse.Namespace) -> None:
    """Flags that do not go with scoring one of MMAD's own answer files."""
    reasons = {"root": "(an answer file is scored without its images)",
               "limit": "(every answer of the file is scored)",
               "tokenizer": "(an answer file holds no reasoning)",
               "protocol": "(MMAD's scripts asked and read the answers: its protocol)",
               "template": "(MMAD's scripts chose the template)"}
    for key, reason in reasons.items():
        if getattr(args, key) is not None:
            raise FadtqError(f"--{key}: not with --predictions --mmad {reason}")


def run(args: argparse.Namespace) -> int:
    check_flags(args)
    out = Path(args.out) if args.out else default_out(args)
    with folder_lock(out, "--out"):  # one evaluation writes a folder at a time
        return evaluate_into(args, out)


def evaluate_into(args: argparse.Namespace, out: Path) -> int:
    from fadtq.evaluation.runner import evaluate, evaluate_file, evaluate_mmad, evaluate_mmad_answers

    split = args.split or "test"
    if args.predictions and args.mmad:
        return _report(evaluate_mmad_answers(args.predictions, args.mmad, out, name=args.name,
                                             overwrite=args.overwrite), out, "mmad_metrics.json")
    if args.predictions:
        metrics = evaluate_file(args.predictions, args.benchmark, out, split=split, limit=args.limit,
                                tokenizer_path=args.tokenizer, name=args.name, overwrite=args.overwrite)
        return _report(metrics, out, "metrics.json")
    model = endpoint(args) if args.server else args.model
    settings = generation_settings(args)
    if args.mmad:
        metrics = evaluate_mmad(model, args.mmad, args.root, out, settings=settings, limit=args.limit,
                                name=args.name, protocol=args.protocol, template=args.template or "random",
                                overwrite=args.overwrite)
        return _report(metrics, out, "mmad_metrics.json")
    benchmark = args.benchmark or (None if args.server else run_benchmark(Path(args.model)))
    if benchmark and not args.benchmark:
        print(f"benchmark: {benchmark} (the one the model's run trained on; --benchmark chooses another)")
    metrics = evaluate(model, benchmark, out, split=split, settings=settings, limit=args.limit, name=args.name,
                       overwrite=args.overwrite)
    return _report(metrics, out, "metrics.json")


def _report(metrics: dict, out: Path, metrics_file: str) -> int:
    """The table and where the files are; with a server, its counts. A question whose request
    failed is left out of the metrics: the status is then 1, and the same command asks it again."""
    if metrics_file == "mmad_metrics.json":
        _report_mmad(metrics, out / "predictions.jsonl", out / metrics_file)
    else:
        from fadtq.evaluation.report import metrics_markdown

        print(metrics_markdown([metrics]))
        print(f"{metrics['n']} pairs -> {out / 'predictions.jsonl'}, {out / metrics_file}")
    server = metrics.get("server")
    if server is None:
        return 0
    print(f"server: {server['requests']} requests, {server['retries']} retries, {server['failed']} failed")
    if server["failed"]:
        print(f"warning: {server['failed']} requests failed after their retries ({server['failed_by_kind']}); their "
              "questions are left out of these metrics. Run the same command again to ask them again.",
              file=sys.stderr)
        return 1
    return 0


def _report_mmad(metrics: dict, predictions: Path, metrics_file: Path) -> None:
    """Both views of MMAD's summary, labelled, and a warning when many replies were not read as a letter."""
    from fadtq.evaluation.mmad_scores import mmad_table, unread_warning

    source = metrics["source"]
    template = f", template {source['template']}" if "template" in source else ""
    print(f"protocol {source['protocol']}{template}")
    mmad = metrics["mmad_convention"]
    print(f"MMAD's convention (summary.py: a type a dataset lacks counts 0, Anomaly Detection the mean of the normal "
          f"and anomalous accuracies; {mmad['dropped']} answers not a letter dropped):")
    print(mmad_table(mmad))
    print("Present cells (only the cells with questions averaged; answers not a letter count as wrong):")
    print(mmad_table(metrics))
    unanswered = f", {metrics['unanswered']} of the file's questions unanswered" if metrics.get("unanswered") else ""
    print(f"{metrics['n']} questions ({metrics['unparsed']} unparsed{unanswered}), pooled accuracy "
          f"{100 * metrics['accuracy']:.1f}% -> {predictions}, {metrics_file}")
    warning = unread_warning(metrics)
    if warning:
        print(warning, file=sys.stderr)
