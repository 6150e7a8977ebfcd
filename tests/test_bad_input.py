"""Bad input to every ``fadtq`` command fails fast: exit status 2, one ``error:`` line that names
the flag, file (and line) or key at fault, and nothing written. One test per category of bad input;
``fadtq/train.py``'s cases are in tests/training/test_trainer_bad_input.py.

Commands run in process through ``fadtq.cli.main`` (what the ``fadtq`` script runs) on real files.
No model is loaded: where a command would load one, a folder that only looks like a model shows
that the failure came first.
"""

from __future__ import annotations

import errno
import json
import shutil
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from fadtq.cli import main
from fadtq.composition import PluginChoice
from fadtq.data.pair3c import build_pair3c, write_benchmark
from fadtq.data.synth import synthesize
from fadtq.errors import FadtqError, report_errors
from fadtq.judges.protocol import JUDGE_TEMPLATES
from fadtq.plugin_manager import collect, default_plugins, new_plugin_manager
from fadtq.scoring_checks import judge_templates
from fadtq.prompts import PromptLibrary
from fadtq.run_config import load_run_config
from fadtq.scoring import build_scorer

ROLLOUTS = Path(__file__).parent / "fixtures" / "hand_rollouts.jsonl"
ROW = {"id": "a", "group": "g", "prompt": "p", "completion": "<think>x</think><answer>good</answer>",
       "label": "good", "category": "breakfast_box"}


def fails(argv: list[str], capsys, *fragments: str) -> str:
    """Run ``fadtq argv``: exit 2 and one ``error:`` line holding every fragment."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def files_under(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


@contextmanager
def nothing_written(folder: Path) -> Iterator[None]:
    """Nothing under ``folder`` is created, changed or removed inside the block."""
    before = files_under(folder)
    yield
    assert files_under(folder) == before


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """The tiny look-alike LOCO tree at 16 px (10 images per test class)."""
    return synthesize(tmp_path_factory.mktemp("loco") / "loco", seed=0, scale="tiny", size=16, workers=1)


@pytest.fixture(scope="module")
def bench(tree, tmp_path_factory) -> Path:
    return write_benchmark(build_pair3c(tree, seed=0, train_per_class=6), tmp_path_factory.mktemp("bench") / "b")


@pytest.fixture
def plugin_dir(tmp_path_factory, monkeypatch):
    """Installs a ``fadtq`` entry-point plugin from source on ``sys.path``; the cached registry is
    rebuilt around the test."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    default_plugins.cache_clear()

    def install(module: str, source: str) -> None:
        folder = tmp_path_factory.mktemp("plugin")
        dist = folder / f"{module}-0.1.dist-info"
        dist.mkdir(parents=True)
        (folder / f"{module}.py").write_text(source)
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.1\n")
        (dist / "entry_points.txt").write_text(f"[fadtq]\n{module} = {module}\n")
        monkeypatch.syspath_prepend(str(folder))
        monkeypatch.delitem(sys.modules, module, raising=False)

    yield install
    default_plugins.cache_clear()


# ------------------------------------------------------------------------------------ the boundary
def test_boundary_turns_expected_failures_into_one_line_and_keeps_tracebacks_of_bugs(capsys):
    def missing() -> int:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/data/x.jsonl")

    def not_utf8() -> int:
        b"\xff".decode("utf-8")
        return 0

    assert report_errors(missing) == 2
    assert capsys.readouterr().err == "error: /data/x.jsonl: No such file or directory\n"
    assert report_errors(not_utf8) == 2
    assert capsys.readouterr().err.startswith("error: not UTF-8 text")
    def two_lines() -> int:
        raise FadtqError("two\nlines")

    assert report_errors(two_lines) == 2
    assert capsys.readouterr().err == "error: two lines\n"
    with pytest.raises(ZeroDivisionError):
        report_errors(lambda: 1 // 0)


# ------------------------------------------------------------------------------------ paths
@pytest.mark.parametrize("case", [
    "reward-output-under-a-file", "reward-output-is-a-folder", "eval-out-is-a-file", "eval-out-under-a-file",
    "report-out-under-a-file", "report-out-is-a-folder", "report-out-is-markdown", "synth-out-is-a-file",
    "synth-out-under-a-file", "synth-grid-under-a-file", "synth-grid-is-a-folder", "synth-grid-not-png",
    "build-benchmark-out-is-a-file", "build-benchmark-out-under-a-file", "build-benchmark-manifest-is-a-folder",
    "make-tiny-model-out-is-a-file", "make-tiny-model-out-holds-other-files", "warmup-out-under-a-file",
])
def test_outputs_that_cannot_be_written_are_refused_before_any_work(case, tmp_path, capsys):
    tmp = tmp_path
    file, folder = tmp / "file", tmp / "folder"
    file.write_text("a file")
    folder.mkdir()
    (folder / "train.jsonl").mkdir()
    (folder / "config.json").write_text("{}")  # enough for --model: the output check comes first
    (folder / "x.html").mkdir()
    (folder / "test.jsonl").write_text(json.dumps(ROW) + "\n")
    (tmp / "others").mkdir()
    (tmp / "others" / "keep.txt").write_text("someone's file")
    argv, flag, problem = {
        "reward-output-under-a-file": (["reward", "--input", ROLLOUTS, "--output", file / "x.jsonl"],
                                       "--output", f"{file} is a file, not a folder"),
        "reward-output-is-a-folder": (["reward", "--input", ROLLOUTS, "--output", folder],
                                      "--output", f"{folder} is a folder; expected a file name"),
        "eval-out-is-a-file": (["eval", "--predictions", ROLLOUTS, "--benchmark", folder, "--out", file],
                               "--out", f"{file} is a file; expected a folder"),
        "eval-out-under-a-file": (["eval", "--model", folder, "--benchmark", folder, "--out", file / "eval"],
                                  "--out", f"{file} is a file, not a folder"),
        "report-out-under-a-file": (["report", folder, "--out", file / "r.html"], "--out", f"{file} is a file"),
        "report-out-is-a-folder": (["report", folder, "--out", folder / "x.html"], "--out", "x.html is a folder"),
        "report-out-is-markdown": (["report", folder, "--out", tmp / "r.md"], "--out", "expected an .html file name"),
        "synth-out-is-a-file": (["synth", "--out", file], "--out", f"{file} is a file; expected a folder"),
        "synth-out-under-a-file": (["synth", "--out", file / "tree"], "--out", f"{file} is a file, not a folder"),
        "synth-grid-under-a-file": (["synth", "--out", tmp / "tree", "--grid", file / "g.png"],
                                    "--grid", f"{file} is a file, not a folder"),
        "synth-grid-is-a-folder": (["synth", "--out", tmp / "tree", "--grid", folder],
                                   "--grid", f"{folder} is a folder"),
        "synth-grid-not-png": (["synth", "--out", tmp / "tree", "--grid", tmp / "grid"], "--grid", "expected a .png"),
        "build-benchmark-out-is-a-file": (["build-benchmark", "--loco-root", folder, "--out", file],
                                          "--out", f"{file} is a file"),
        "build-benchmark-out-under-a-file": (["build-benchmark", "--loco-root", folder, "--out", file / "b"],
                                             "--out", f"{file} is a file, not a folder"),
        "build-benchmark-manifest-is-a-folder": (["build-benchmark", "--loco-root", folder, "--out", folder],
                                                 "--out", f"{folder / 'train.jsonl'} is a folder"),
        "make-tiny-model-out-is-a-file": (["make-tiny-model", "--out", file], "--out", f"{file} is a file"),
        "make-tiny-model-out-holds-other-files": (["make-tiny-model", "--out", tmp / "others"], "--out",
                                                  "holds other files; expected a new folder or one with config.json"),
        "warmup-out-under-a-file": (["warmup", "--model", folder, "--out", file / "m"], "--out",
                                    f"{file} is a file, not a folder"),
    }[case]
    with nothing_written(tmp):
        fails([str(a) for a in argv], capsys, f"error: {flag}", problem)


# ------------------------------------------------------------------------------------ encoding
def latin1(path: Path, text: str) -> Path:
    path.write_bytes(text.encode() + b"# caf\xe9\n")
    return path


def test_files_that_are_not_utf8_name_file_and_line(bench, tmp_path, capsys):
    rollouts = latin1(tmp_path / "in.jsonl", json.dumps(ROW) + "\n")
    config = latin1(tmp_path / "c.yaml", "extends: cpu_default\n")
    predictions = latin1(tmp_path / "p.jsonl", "")
    broken_bench = tmp_path / "bench"
    shutil.copytree(bench, broken_bench)
    latin1(broken_bench / "test.jsonl", (bench / "test.jsonl").read_text())
    evaluated = tmp_path / "evaluated"
    evaluated.mkdir()
    latin1(evaluated / "metrics.json", "{}\n")
    out = tmp_path / "out"
    expected = [
        (["reward", "--input", rollouts, "--output", out], f"{rollouts}:2: not UTF-8 text (byte 0xe9)"),
        (["reward", "--config", config, "--input", ROLLOUTS, "--output", out], f"{config}:2: not UTF-8 text"),
        (["eval", "--predictions", predictions, "--benchmark", bench, "--out", out], f"{predictions}:1: not UTF-8"),
        (["eval", "--predictions", predictions, "--benchmark", broken_bench, "--out", out],
         f"{broken_bench / 'test.jsonl'}:{len((bench / 'test.jsonl').read_text().splitlines()) + 1}: not UTF-8"),
        (["report", evaluated, "--out", tmp_path / "r.html"], f"{evaluated / 'metrics.json'}:2: not UTF-8"),
    ]
    for argv, fragment in expected:
        fails([str(a) for a in argv], capsys, fragment)
    assert not out.exists() and not (tmp_path / "r.html").exists()


# ------------------------------------------------------------------------------------ nonsense
@pytest.mark.parametrize("content, fragment", [
    ("", "in.jsonl: no rollouts (the file is empty or blank)"),
    ("\n  \n\n", "in.jsonl: no rollouts"),
    (json.dumps({**ROW, "prompt": 5}) + "\n", "in.jsonl:1: field 'prompt': expected a string, got 5"),
    (json.dumps({**ROW, "id": 7}) + "\n", "in.jsonl:1: field 'id': expected a string, got 7"),
    (json.dumps({**ROW, "test_image": 3}) + "\n", "in.jsonl:1: field 'test_image': expected a string or null"),
    (json.dumps(ROW)[:-1] + ', "score": NaN}\n', "in.jsonl:1: invalid JSON (NaN is not a JSON number)"),
])
def test_rollouts_that_hold_nothing_or_numbers_for_strings_are_refused(content, fragment, tmp_path, capsys):
    (tmp_path / "in.jsonl").write_text(content)
    fails(["reward", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl")], capsys, fragment)
    assert not (tmp_path / "out.jsonl").exists()


def test_settings_that_leave_nothing_to_do_or_would_be_ignored_are_refused(tree, tmp_path, capsys):
    tmp = tmp_path
    (tmp / "config.json").write_text("{}")
    cases = [
        (["synth", "--out", tmp / "t", "--workers", "0"], "--workers 0: expected at least 1"),
        (["build-benchmark", "--loco-root", tree, "--out", tmp / "b", "--train-per-class", "0"],
         "--train-per-class 0: expected at least 1"),
        (["build-benchmark", "--loco-root", tree, "--out", tmp / "b", "--train-per-class", "10"],
         "--train-per-class 10: leaves no test pairs"),
        (["build-benchmark", "--loco-root", tree, "--out", tmp / "b", "--categories", "pushpins", "pushpins"],
         "--categories pushpins: given twice"),
        (["eval", "--model", tmp, "--out", tmp / "e", "--batch-size", "0"], "--batch-size 0: expected at least 1"),
        (["eval", "--model", tmp, "--out", tmp / "e", "--max-new-tokens", "0"], "--max-new-tokens 0"),
        (["eval", "--model", tmp, "--out", tmp / "e", "--sample", "--temperature", "0"], "--temperature 0.0"),
        (["eval", "--model", tmp, "--out", tmp / "e", "--top-p", "0.5"], "--top-p: only with --sample"),
        (["eval", "--predictions", tmp / "p.jsonl", "--out", tmp / "e", "--batch-size", "4"],
         "--batch-size: only with --model"),
        (["synth", "--out", tmp / "t", "--seed", "-1"], "--seed -1: expected a number >= 0"),
        (["synth", "--out", tmp / "t", "--size", "99999999"], "--size 99999999: expected at most 4096 pixels"),
        (["reward", "--input", ROLLOUTS, "--output", tmp / "o.jsonl", "--rewards", ""], "--rewards: empty name"),
        (["reward", "--input", ROLLOUTS, "--output", tmp / "o.jsonl", "--prompts-dir", ""], "--prompts-dir: empty"),
        (["reward", "--input", tmp, "--output", tmp / "o.jsonl"], f"{tmp}: is a folder; expected a JSONL file"),
        (["warmup", "--model", tmp, "--out", tmp / "m", "--lr", "-1"], "--lr -1.0: expected a finite number > 0"),
        (["warmup", "--model", tmp, "--out", tmp / "m", "--steps", "0"], "--steps 0: expected at least 1"),
    ]
    with nothing_written(tmp):
        for argv, fragment in cases:
            fails([str(a) for a in argv], capsys, fragment)


def test_a_loco_tree_without_defects_config_is_refused(tree, tmp_path, capsys):
    copy = Path(shutil.copytree(tree, tmp_path / "loco"))
    (copy / "screw_bag" / "defects_config.json").unlink()
    fails(["build-benchmark", "--loco-root", str(copy), "--out", str(tmp_path / "b")], capsys,
          f"{copy / 'screw_bag' / 'defects_config.json'}: not found")
    assert not (tmp_path / "b").exists()


def truncate(image: Path) -> Path:
    """Cut the file in the middle of its pixel data: the header still reads, the pixels do not."""
    data = image.read_bytes()
    image.write_bytes(data[:len(data) // 2])
    return image


def test_a_truncated_image_fails_build_benchmark_and_eval_before_the_model_loads(tree, bench, tmp_path, capsys):
    copy = Path(shutil.copytree(tree, tmp_path / "loco"))
    cut = truncate(copy / "juice_bottle" / "test" / "good" / "003.png")
    fails(["build-benchmark", "--loco-root", str(copy), "--out", str(tmp_path / "b"), "--train-per-class", "6"],
          capsys, f"{cut}: not a readable image", "truncated")
    assert not (tmp_path / "b").exists()

    eval_bench, cut = with_spoiled_first_image(bench, copy, tmp_path, truncate)
    model_eval_fails(eval_bench, tmp_path, capsys, f"{cut}: not a readable image")


def test_weights_cut_short_are_refused_before_the_model_loads(bench, tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"\x40\0\0\0\0\0\0\0{\"w\": {")  # a header cut short
    fails(["eval", "--model", str(model), "--benchmark", str(bench), "--out", str(tmp_path / "e")], capsys,
          f"--model {model / 'model.safetensors'}: not a readable safetensors file (Error while deserializing header")
    assert not (tmp_path / "e").exists()


def with_spoiled_first_image(bench: Path, images: Path, tmp_path: Path, spoil) -> tuple[Path, Path]:
    """A copy of ``bench`` that reads its images from ``images`` (a copy of the tree), with ``spoil``
    applied to its first test image; and that image."""
    copy = Path(shutil.copytree(bench, tmp_path / "bench"))
    stats = json.loads((copy / "stats.json").read_text())
    (copy / "stats.json").write_text(json.dumps({**stats, "loco_root": str(images)}))
    image = images / json.loads((copy / "test.jsonl").read_text().splitlines()[0])["test_image"]
    spoil(image)
    return copy, image


def model_eval_fails(bench: Path, tmp_path: Path, capsys, fragment: str) -> None:
    """``fadtq eval --model`` on ``bench`` fails with ``fragment`` before a model loads, writing nothing."""
    model = tmp_path / "model"  # looks like a model folder; loading it would fail with another message
    model.mkdir()
    (model / "config.json").write_text("{}")
    fails(["eval", "--model", str(model), "--benchmark", str(bench), "--out", str(tmp_path / "e")], capsys, fragment)
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("argv, fragment", [
    (["reward", "--inp", "x.jsonl", "--output", "o.jsonl"], "the following arguments are required: --input"),
    (["synth", "--out", "t", "--work", "2"], "unrecognized arguments: --work"),
    (["eval", "--pred", "p.jsonl"], "one of the arguments --model --predictions is required"),
    (["build-benchmark", "--out", "b", "--train-per", "3"], "unrecognized arguments: --train-per"),
])
def test_abbreviated_flags_are_not_taken_for_longer_ones(argv, fragment, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with nothing_written(tmp_path):
        fails(argv, capsys, fragment)


def test_a_metrics_file_that_fadtq_eval_did_not_write_is_refused(tmp_path, capsys):
    for name, content, fragment in (("list", "[1]", "expected a JSON object, got list"),
                                    ("partial", '{"name": "x", "source": {}}', "no 'n'; expected a metrics.json")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(content)
        fails(["report", str(tmp_path / name), "--out", str(tmp_path / "r.html")], capsys,
              f"{tmp_path / name / 'metrics.json'}: {fragment}")
    assert not (tmp_path / "r.html").exists()


# ------------------------------------------------------------------------------------ non-finite values
@pytest.mark.parametrize("values, fragment", [
    ("[float('nan')] * len(rollouts)", "reward plugin 'odd': returned nan for rollout 'g1-a'; expected a finite"),
    ("[float('inf')] * len(rollouts)", "reward plugin 'odd': returned inf for rollout 'g1-a'"),
    ("['high'] * len(rollouts)", "reward plugin 'odd': returned 'high' for rollout 'g1-a'"),
    ("[1.0]", "reward plugin 'odd': returned 1 values for 6 rollouts"),
    ("[0.5] * len(rollouts), {'share': 'high'}", "reward plugin 'odd': log 'share' is 'high'; expected a finite number"),
    ("[0.5] * len(rollouts), {'share': float('nan')}", "reward plugin 'odd': log 'share' is nan"),
    ("[0.5] * len(rollouts), {'share': True}", "reward plugin 'odd': log 'share' is True"),
    ("[0.5] * len(rollouts), [0.5]", "reward plugin 'odd': logs are list; expected a mapping of names to numbers"),
])
def test_reward_plugins_must_return_one_finite_number_per_rollout_and_numbers_as_logs(values, fragment, plugin_dir,
                                                                                      tmp_path, capsys):
    plugin_dir("fadtq_test_odd", "from fadtq.api import RewardFunction, RewardOutput, hookimpl\n\n\n"
                                 "@hookimpl\ndef register_rewards():\n"
                                 f"    return [RewardFunction('odd', lambda rollouts, ctx: RewardOutput({values}))]\n")
    out = tmp_path / "out.jsonl"
    fails(["reward", "--rewards", "format,odd", "--input", str(ROLLOUTS), "--output", str(out)], capsys, fragment)
    assert not out.exists()


def test_finite_terms_whose_total_overflows_are_named_not_blamed_on_the_estimator(plugin_dir, tmp_path, capsys):
    plugin_dir("fadtq_test_huge", "from fadtq.api import RewardFunction, RewardOutput, hookimpl\n\n\n"
                                  "@hookimpl\ndef register_rewards():\n"
                                  "    return [RewardFunction(n, lambda rollouts, ctx: RewardOutput([1e308] * len(rollouts)))\n"
                                  "            for n in ('huge_a', 'huge_b')]\n")
    out = tmp_path / "out.jsonl"
    fails(["reward", "--rewards", "huge_a,huge_b", "--input", str(ROLLOUTS), "--output", str(out)], capsys,
          "reward total of rollout 0 is inf (terms: huge_a=1e+308, huge_b=1e+308); the terms must sum to a finite")
    assert not out.exists()


# ------------------------------------------------------------------------------------ late failures
def test_a_broken_judge_template_fails_before_the_hf_judge_loads(tmp_path, capsys):
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "judge_user.j2").write_text("Judge this:\n{{ item.reasoning | nofilter }}\n")
    config = tmp_path / "hf.yaml"
    config.write_text(f"extends: cpu_default\njudge: {{name: hf, options: {{model: {tmp_path}/no-model}}}}\n")
    out = tmp_path / "out.jsonl"
    argv = ["reward", "--config", str(config), "--input", str(ROLLOUTS), "--output", str(out)]
    fails([*argv, "--prompts-dir", str(prompts)], capsys, f"{prompts / 'judge_user.j2'}:2: ", "nofilter")
    fails(argv, capsys, f"{config}: judge.options.model: {tmp_path}/no-model: no such folder")
    assert not out.exists()


def test_an_unreachable_judge_server_fails_before_scoring(tmp_path, capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once the socket is closed
    config = tmp_path / "openai.yaml"
    config.write_text("extends: cpu_default\njudge:\n  name: openai\n  options:\n"
                      f"    base_urls: [http://127.0.0.1:{port}/v1]\n    model: judge\n    max_retries: 0\n")
    out = tmp_path / "out.jsonl"
    fails(["reward", "--config", str(config), "--input", str(ROLLOUTS), "--output", str(out)], capsys,
          f"{config}: judge.options.base_urls: the judge server did not answer (connection")
    assert not out.exists()


def test_judge_templates_are_checked_and_hashed_only_when_the_judge_renders_them():
    cfg, plugins = load_run_config(None), default_plugins()
    with_judge = build_scorer(cfg.reward, cfg.judge, plugins, PromptLibrary())
    without_judge = build_scorer(cfg.reward.with_active(["format", "accuracy"], []), cfg.judge, plugins,
                                 PromptLibrary())
    assert judge_templates(with_judge, PluginChoice("heuristic"), plugins) == ()
    assert judge_templates(with_judge, PluginChoice("openai"), plugins) == JUDGE_TEMPLATES
    assert judge_templates(without_judge, PluginChoice("hf"), plugins) == ()


# ------------------------------------------------------------------------------------ wrong blame
def test_an_unknown_reward_in_a_config_term_is_blamed_on_the_config(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("extends: cpu_default\nreward:\n  terms:\n    extra: {reward: nosuch}\n")
    line = fails(["reward", "--config", str(config), "--input", str(ROLLOUTS), "--output", str(tmp_path / "o")],
                 capsys, f"{config}: reward.terms.extra.reward: unknown reward 'nosuch'")
    assert "--rewards" not in line


def test_flags_of_fadtq_reward_are_blamed_on_the_flag(tmp_path, capsys):
    argv = ["reward", "--input", str(ROLLOUTS), "--output", str(tmp_path / "o")]
    fails([*argv, "--judge", "nope"], capsys, "error: --judge: unknown judge 'nope'")
    fails([*argv, "--prompts-dir", str(tmp_path / "none")], capsys, f"error: --prompts-dir: {tmp_path}/none: not a dir")
    fails([*argv, "--advantage", "ppo"], capsys, "error: --advantage: unknown advantage estimator 'ppo'")
    # the preset sets no judge.options.model: the flag that chose the judge asking for it answers
    fails([*argv, "--judge", "hf"], capsys, "error: --judge: judge.options.model: required by the hf judge")


# ------------------------------------------------------------------------------------ plugins
def test_a_plugin_that_fails_to_import_is_named_by_its_distribution(plugin_dir, capsys):
    plugin_dir("fadtq_test_broken", "import fadtq_no_such_dependency\n")
    with pytest.raises(FadtqError, match=r"^plugin fadtq-test-broken 0\.1: loading entry point fadtq_test_broken = "
                                         r"fadtq_test_broken failed \(ModuleNotFoundError: No module named "
                                         r"'fadtq_no_such_dependency'\)"):
        new_plugin_manager()
    fails(["plugins"], capsys, "plugin fadtq-test-broken 0.1: ")


def test_a_plugin_hook_that_returns_the_wrong_things_is_named(plugin_dir):
    plugin_dir("fadtq_test_wrong", "from fadtq.api import hookimpl\n\n\n"
                                   "@hookimpl\ndef register_rewards():\n    return ['format']\n")
    with pytest.raises(FadtqError, match=r"^plugin fadtq-test-wrong 0\.1: register_rewards returned 'format'; "
                                         r"expected RewardFunction objects"):
        collect(new_plugin_manager())


def test_a_misnamed_hook_is_refused_naming_the_plugin(plugin_dir, capsys):
    """``register_reward`` (singular) matches no hook: pluggy would ignore it and add nothing."""
    plugin_dir("fadtq_test_misnamed", "from fadtq.api import hookimpl\n\n\n"
                                      "@hookimpl\ndef register_reward():\n    return []\n")
    with pytest.raises(FadtqError, match=r"^plugin fadtq-test-misnamed 0\.1: .*register_reward.*known hooks: "
                                         r".*register_rewards"):
        new_plugin_manager()
    fails(["plugins"], capsys, "plugin fadtq-test-misnamed 0.1: ")


def test_ctrl_c_in_any_command_is_one_line_and_status_130(tmp_path, capsys, monkeypatch):
    """Ctrl-C while the look-alike is drawn (the drawing interrupted where it stands): no traceback,
    one line, the shell's status for SIGINT, and nothing half-written at --out."""
    import fadtq.data.synth as synth

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(synth, "synthesize", interrupted)
    assert main(["synth", "--out", str(tmp_path / "look")]) == 130
    assert capsys.readouterr().err.strip().splitlines() == ["interrupted"]
    assert not (tmp_path / "look").exists()


def _png_header(path, width: int, height: int) -> None:
    """A PNG that declares ``width`` x ``height`` grey pixels (its data is one row): the size is read
    from the header, before anything would be decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * (width + 1)))
                     + chunk(b"IEND", b""))


@pytest.mark.parametrize("width, height", [(9000, 9000), (20000, 20000)])  # under and over PIL's own limit
def test_an_image_too_large_to_decode_is_one_line_naming_it(tmp_path, width, height):
    from fadtq.data.loco import load_rgb

    path = tmp_path / "huge.png"
    _png_header(path, width, height)
    with pytest.raises(FadtqError) as error:
        load_rgb(path)
    message = str(error.value)
    assert message.startswith(f"{path}: ") and "more than the 67,108,864 pixels (8192 x 8192)" in message
    assert (f"{width} x {height} pixels" in message) or (f"({width * height} pixels)" in message)


# ------------------------------------------------------------------------------------ folders already in use
def test_a_non_empty_out_is_refused_unless_overwrite(tree, bench, tmp_path, capsys):
    """build-benchmark and eval --out: a folder of other files, or an earlier benchmark or evaluation,
    is refused with nothing written; --overwrite replaces the command's own files and keeps the others."""
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "notes.txt").write_text("mine")
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps({"id": row["id"], "prediction": "good"}) + "\n"
                             for row in map(json.loads, (bench / "test.jsonl").read_text().splitlines())))
    build = ["build-benchmark", "--loco-root", str(tree), "--train-per-class", "6", "--out"]
    evaluate = ["eval", "--predictions", str(preds), "--benchmark", str(bench), "--out"]
    with nothing_written(tmp_path):
        fails([*build, str(notes)], capsys, f"--out {notes}: holds other files (notes.txt)", "--overwrite")
        fails([*evaluate, str(notes)], capsys, f"--out {notes}: holds other files (notes.txt)", "--overwrite")
        fails([*build, str(bench)], capsys, f"--out {bench}: holds a benchmark (stats.json, test.jsonl, train.jsonl)")
    assert main([*evaluate, str(tmp_path / "e")]) == 0
    with nothing_written(tmp_path):
        fails([*evaluate, str(tmp_path / "e")], capsys, "holds an earlier evaluation (predictions.jsonl, metrics.json",
              "give --overwrite to replace it")
    assert main([*evaluate, str(notes), "--overwrite"]) == 0
    assert main([*build, str(notes), "--overwrite"]) == 0
    assert sorted(p.name for p in notes.iterdir()) == sorted(["notes.txt", "predictions.jsonl", "metrics.json",
                                                              "train.jsonl", "test.jsonl", "stats.json"])
    assert (notes / "notes.txt").read_text() == "mine"


# ------------------------------------------------------------------------------------ a test pair seen in training
def test_a_test_pair_whose_image_is_in_the_training_split_is_refused(bench, tmp_path, capsys):
    leaky = Path(shutil.copytree(bench, tmp_path / "leaky"))
    train_rows = (leaky / "train.jsonl").read_text().splitlines()
    test_rows = (leaky / "test.jsonl").read_text().splitlines()
    (leaky / "test.jsonl").write_text("\n".join(test_rows + [train_rows[3].replace('"split": "train"',
                                                                                     '"split": "test"')]) + "\n")
    image = json.loads(train_rows[3])["test_image"]
    preds = tmp_path / "preds.jsonl"
    preds.write_text(json.dumps({"id": "x", "prediction": "good"}) + "\n")
    with nothing_written(tmp_path):
        fails(["eval", "--predictions", str(preds), "--benchmark", str(leaky), "--out", str(tmp_path / "e")], capsys,
              f"{leaky / 'test.jsonl'}:{len(test_rows) + 1}: field 'test_image': {image} is also an image of the "
              "training split")


# ------------------------------------------------------------------------------------ templates nobody reads
def test_a_misnamed_template_is_an_error_and_a_judge_template_nobody_reads_a_warning(tmp_path, capsys, caplog):
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "judge_usr.j2").write_text("{{ item.reasoning }}\n")
    argv = ["reward", "--input", str(ROLLOUTS), "--output", str(tmp_path / "o.jsonl"), "--prompts-dir", str(prompts)]
    fails(argv, capsys, f"--prompts-dir: {prompts / 'judge_usr.j2'}: names no template; known: judge_system.j2, "
                        "judge_user.j2, mmad_question.j2, policy_question.j2")
    (prompts / "judge_usr.j2").rename(prompts / "judge_user.j2")
    assert main(argv) == 0  # the CPU default's judge is the heuristic one: it reads no template
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [f"prompts_dir {prompts}: judge_user.j2 will not be read: the judge of this run renders no "
                        "templates, or no reward term asks it"]


# ------------------------------------------------------------------------------------ paths that are not files
def test_folders_link_loops_and_a_cache_that_is_a_file_get_their_own_message(bench, tmp_path, capsys, monkeypatch):
    (tmp_path / "loop_a").symlink_to(tmp_path / "loop_b")
    (tmp_path / "loop_b").symlink_to(tmp_path / "loop_a")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere.yaml")
    reward = ["reward", "--input", str(ROLLOUTS), "--output", str(tmp_path / "o.jsonl"), "--config"]
    with nothing_written(tmp_path):
        fails([*reward, str(bench)], capsys, f"--config {bench}: is a folder; expected a file")
        fails([*reward, str(tmp_path / "loop_a")], capsys, "loop_a: a loop of symbolic links")
        fails([*reward, str(tmp_path / "dangling")], capsys, f"dangling: a symbolic link to {tmp_path / 'nowhere.yaml'}, "
                                                             "which does not exist")
    monkeypatch.setenv("FADTQ_CACHE", str(ROLLOUTS))
    fails(["build-benchmark", "--out", str(tmp_path / "b")], capsys, f"FADTQ_CACHE={ROLLOUTS}: not a folder")
    assert not (tmp_path / "b").exists()

    def folder_in_its_place(image: Path) -> None:
        image.unlink()
        image.mkdir()

    images = Path(shutil.copytree(json.loads((bench / "stats.json").read_text())["loco_root"], tmp_path / "images"))
    broken, image = with_spoiled_first_image(bench, images, tmp_path, folder_in_its_place)
    model_eval_fails(broken, tmp_path, capsys, f"field 'test_image': {image}: is a folder; expected a file")
