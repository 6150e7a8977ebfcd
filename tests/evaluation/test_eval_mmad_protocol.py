"""``fadtq eval --mmad`` as MMAD asks it: the two protocols, the template choice, MMAD's and the
project's summaries, MMAD's own answer files, and the warning on replies not read as a letter.

Everything runs on a hand-written file in MMAD's real format (a JSON object keyed by image path;
``image_path``, ``mask_path``, ``conversation`` with ``Question``, ``Answer``, ``Options``,
``type``, ``annotation``; ``similar_templates``, ``random_templates``), whose images the test
writes (one flat colour each, so that the scripted server knows which image it was sent), and
replies from a scripted OpenAI-compatible server on 127.0.0.1. The expected tables are computed
by hand in the comments of ``EXPECTED``."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web
from fake_openai import FakeOpenAI, ok
from PIL import Image

from fadtq.cli import main as cli_main
from fadtq.evaluation import mmad_protocol
from fadtq.evaluation.runner import evaluate_mmad

D1 = "DS-MVTec/bottle/image/broken_large/000.png"
D2 = "DS-MVTec/bottle/image/good/000.png"
L1 = "MVTec-LOCO/juice_bottle/test/logical_anomalies/000.png"
DETECT = "Is there any defect in the object?"
KIND = "There is a defect in the object. What is the type of the defect?"
WHERE = "Where is the defect in the image?"
PRODUCT = "What kind of product is in the image?"
DESCRIBE = "Which description fits the defect?"
LABELS = "How many labels are on the bottle?"
COLOUR = "What colour is the juice?"
YES_NO = {"A": "Yes.", "B": "No."}
PRODUCTS = {"A": "Cable.", "B": "Bottle.", "C": "Screw.", "D": "Pill."}


def _q(question: str, options: dict, answer: str, kind: str) -> dict:
    return {"Question": question, "Answer": answer, "Options": options, "type": kind, "annotation": True}


def _entry(image_path: str, mask_path: str, conversation: list[dict], random: list[str], similar: list[str]) -> dict:
    return {"image_path": image_path, "mask_path": mask_path, "conversation": conversation,
            "similar_templates": similar, "random_templates": random}


MMAD_FILE = {
    D1: _entry("image/broken_large/000.png", "rbg_mask/broken_large/000_rbg_mask.png", [
        _q(DETECT, YES_NO, "A", "Anomaly Detection"),
        # Options with a gap, as annotation leaves them: MMAD asks A Scratch, B Broken large, C Contamination.
        _q(KIND, {"A": "Scratch.", "C": "Broken large.", "D": "Contamination."}, "C", "Defect Classification"),
        _q(WHERE, {"A": "Top.", "B": "Bottom.", "C": "Left.", "D": "Right."}, "B", "Defect Localization"),
        _q(PRODUCT, PRODUCTS, "B", "Object Classification"),
    ], random=["MVTec-AD/bottle/train/good/001.png", "MVTec-AD/bottle/train/good/002.png"],
        similar=["MVTec-AD/bottle/train/good/003.png"]),
    D2: _entry("image/good/000.png", "", [
        _q(DETECT, YES_NO, "B", "Anomaly Detection"),
        _q(PRODUCT, PRODUCTS, "B", "Object Classification"),
    ], random=["MVTec-AD/bottle/train/good/002.png"], similar=["MVTec-AD/bottle/train/good/003.png"]),
    L1: _entry("test/logical_anomalies/000.png", "ground_truth/logical_anomalies/000/000.png", [
        _q(DETECT, YES_NO, "A", "Anomaly Detection"),
        _q(DESCRIBE, {"A": "The label is missing.", "B": "The juice and the fruit on the label do not match.",
                      "C": "The bottle is cracked."}, "B", "Defect Description"),
        _q(LABELS, {"A": "1", "B": "2", "C": "3"}, "B", "Object Structure"),
        # MMAD asks A Orange, B Red, C Yellow: the answer is B there, C in the file.
        _q(COLOUR, {"B": "Orange.", "C": "Red.", "D": "Yellow."}, "C", "Object Details"),
    ], random=["MVTec-LOCO/juice_bottle/train/good/010.png"], similar=["MVTec-LOCO/juice_bottle/train/good/011.png"]),
}
# What the scripted model says, whatever the protocol; how each protocol reads it:
REPLIES = {
    (D1, DETECT): "A",  # both: A, right
    (D1, KIND): "I considered A, but the answer is B.",  # mmad: last letter B, right; fadtq: two letters, unparsed
    (D1, WHERE): "<answer>B</answer> A crack near the bottom.",  # mmad: last letter A, wrong; fadtq: B, right
    (D1, PRODUCT): "Bottle.",  # mmad: matches the option text "Bottle.", B, right; fadtq: unparsed
    (D2, DETECT): "B. A clean bottle.",  # mmad: A (the last letter: MMAD's quirk), wrong; fadtq: unparsed
    (D2, PRODUCT): "B",  # both right
    (L1, DETECT): "<answer>A</answer>",  # both right
    (L1, DESCRIBE): "I cannot tell.",  # mmad: closest option text, C "The bottle is cracked.", wrong; fadtq: unparsed
    (L1, LABELS): "C",  # both wrong
    (L1, COLOUR): "C",  # mmad: C is Yellow after re-lettering, wrong; fadtq: C is Red, right
}
TYPES = ["Anomaly Detection", "Defect Classification", "Defect Localization", "Defect Description",
         "Object Classification", "Object Analysis"]
EXPECTED = {
    "mmad": {
        # DS-MVTec: detection 1/1 anomalous, 0/1 normal -> 0.5; classification 1/1; localization 0/1;
        # product 2/2. MVTec-LOCO: detection 1/1 (anomalous only); description 0/1; object analysis 0/2.
        "present": {"DS-MVTec": [0.5, 1.0, 0.0, None, 1.0, None, 0.625],
                    "MVTec-LOCO": [1.0, None, None, 0.0, None, 0.0, 1 / 3],
                    "Average": [0.75, 1.0, 0.0, 0.0, 1.0, 0.0, (0.625 + 1 / 3) / 2]},
        # Zero-filled: LOCO's missing normal half counts 0 (detection 0.5) and so do its missing types.
        "mmad_convention": {"DS-MVTec": [0.5, 1.0, 0.0, 0.0, 1.0, 0.0, 2.5 / 6],
                            "MVTec-LOCO": [0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5 / 6],
                            "Average": [0.5, 0.5, 0.0, 0.0, 0.5, 0.0, 0.25]},
        "counts": {"n": 10, "correct": 5, "unparsed": 0, "read_by_option_text": 2, "unread": 2, "dropped": 0},
    },
    "fadtq": {
        # DS-MVTec: detection 1/1 anomalous, 0/1 normal (unparsed) -> 0.5; classification 0/1 (unparsed);
        # localization 1/1; product 1/2. MVTec-LOCO: detection 1/1; description 0/1; object analysis 1/2.
        "present": {"DS-MVTec": [0.5, 0.0, 1.0, None, 0.5, None, 0.5],
                    "MVTec-LOCO": [1.0, None, None, 0.0, None, 0.5, 0.5],
                    "Average": [0.75, 0.0, 1.0, 0.0, 0.5, 0.5, 0.5]},
        # The four unparsed answers dropped: DS-MVTec's detection has no normal half left (0.5), its
        # classification nothing (0); LOCO's description nothing (0).
        "mmad_convention": {"DS-MVTec": [0.5, 0.0, 1.0, 0.0, 1.0, 0.0, 2.5 / 6],
                            "MVTec-LOCO": [0.5, 0.0, 0.0, 0.0, 0.0, 0.5, 1 / 6],
                            "Average": [0.5, 0.0, 0.5, 0.0, 0.5, 0.25, 3.5 / 12]},
        "counts": {"n": 10, "correct": 5, "unparsed": 4, "read_by_option_text": 0, "unread": 4, "dropped": 4},
    },
}


def _colour(index: int) -> tuple[int, int, int]:
    return (40 * index % 256, 255 - 30 * index, 100 + 10 * index)


@pytest.fixture
def handmade(tmp_path) -> Path:
    """The file above, written as ``mmad.json`` with a flat-coloured image for every path it names."""
    root = tmp_path / "MMAD"
    paths = sorted({key for key in MMAD_FILE} | {p for e in MMAD_FILE.values()
                                                  for p in e["similar_templates"] + e["random_templates"]})
    for index, relative in enumerate(paths):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (16, 12), _colour(index)).save(root / relative)
    (root / "mmad.json").write_text(json.dumps(MMAD_FILE, indent=4))
    return root / "mmad.json"


def _images(handmade: Path) -> dict[tuple[int, ...], str]:
    """The image path of each colour."""
    return {np.asarray(Image.open(path))[0, 0].tobytes(): str(path.relative_to(handmade.parent))
            for path in handmade.parent.rglob("*.png")}


def _sent(body: dict, colours: dict) -> tuple[list[str], list[str]]:
    """(the image paths, the texts) of a request, in order."""
    images, texts = [], []
    for part in body["messages"][0]["content"]:
        if part["type"] == "image_url":
            data = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
            images.append(colours[np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))[0, 0].tobytes()])
        else:
            texts.append(part["text"])
    return images, texts


def scripted_model(handmade: Path):
    """The reply of REPLIES to the question about the image asked, if the reference is the image's
    first random template or there is none; "E" (wrong everywhere) with any other reference."""
    colours = _images(handmade)

    def reply(body: dict):
        images, texts = _sent(body, colours)
        query = images[-1]
        question = next(q for (image, q) in REPLIES if image == query and q in texts[-1])
        if len(images) == 2 and images[0] != MMAD_FILE[query]["random_templates"][0]:
            return ok("E")
        return ok(REPLIES[query, question])

    return reply


def _eval(handmade: Path, out: Path, *flags: str) -> tuple[FakeOpenAI, dict, str, str]:
    """``fadtq eval --server --mmad`` on the hand-made file: (server, metrics, stdout, stderr)."""
    from contextlib import redirect_stderr, redirect_stdout

    stdout, stderr = io.StringIO(), io.StringIO()
    with FakeOpenAI([scripted_model(handmade)]) as server, redirect_stdout(stdout), redirect_stderr(stderr):
        assert cli_main(["eval", "--server", server.url, "--model", "fake", "--mmad", str(handmade),
                         "--out", str(out), *flags]) == 0
    return server, json.loads((out / "mmad_metrics.json").read_text()), stdout.getvalue(), stderr.getvalue()


def _table(view: dict) -> dict[str, list[float | None]]:
    """A view's scores as rows of TYPES then Average (None: no cell)."""
    def row(cells: dict, score: float) -> list[float | None]:
        return [cells[t]["score"] if t in cells else None for t in TYPES] + [score]

    table = {name: row(d["types"], d["score"]) for name, d in view["datasets"].items()}
    table["Average"] = row(view["types"], view["score"])
    return table


def _assert_tables(metrics: dict, expected: dict) -> None:
    for view in ("present", "mmad_convention"):
        got = _table(metrics if view == "present" else metrics["mmad_convention"])
        assert list(got) == ["DS-MVTec", "MVTec-LOCO", "Average"]  # the file's order; MVTec-AD gives templates only
        for name, values in expected[view].items():
            assert got[name] == pytest.approx(values), (view, name)
    counts = {key: metrics[key] for key in ("n", "correct", "unparsed", "read_by_option_text", "unread")}
    assert {**counts, "dropped": metrics["mmad_convention"]["dropped"]} == expected["counts"]


@pytest.mark.parametrize("protocol", ["mmad", "fadtq"])
def test_each_protocol_gives_the_hand_computed_tables(protocol, handmade, tmp_path):
    flags = [] if protocol == "mmad" else ["--protocol", "fadtq"]  # mmad: the default for a served model
    server, metrics, printed, warned = _eval(handmade, tmp_path / "out", *flags)
    assert len(server.bodies) == 10 and metrics["source"]["protocol"] == protocol
    assert metrics["source"]["template"] == "random"
    _assert_tables(metrics, EXPECTED[protocol])
    config = json.loads((tmp_path / "out" / "eval_config.json").read_text())
    assert (config["protocol"], config["template"]) == (protocol, "random")
    assert f"protocol {protocol}, template random" in printed
    assert "MMAD's convention" in printed and "Present cells" in printed
    records = {r["id"]: r for r in map(json.loads, (tmp_path / "out" / "predictions.jsonl").read_text().splitlines())}
    assert records[f"{D1}#1"]["answer"] == ("B" if protocol == "mmad" else "C")  # re-lettered for mmad only
    warnings = [line for line in warned.splitlines() if line.startswith("warning")]  # (the progress bar aside)
    if protocol == "fadtq":  # 4 of 10 replies are not one letter: more than 20%
        [line] = warnings
        assert line.startswith("warning: 4 of 10 replies (40%) were not read as one option letter (4 unparsed), e.g. ")
        assert line.count(f"{D1}#") == 2 and f"{D1}#1: 'I considered A, but the answer is B.'" in line
        assert line.count("; ") == 2  # three examples
    else:  # 2 of 10 matched to an option's text: 20%, not more
        assert warnings == []


def test_the_mmad_request_is_mmads(handmade, tmp_path):
    server, _, _, _ = _eval(handmade, tmp_path / "out")
    colours = _images(handmade)
    asked = {}
    for body in server.bodies:
        images, texts = _sent(body, colours)
        asked[images[-1], texts[-1].split(" \n")[0]] = (images, texts, body)
    images, texts, body = asked[D1, f"Question 2: {KIND}"]
    assert images == ["MVTec-AD/bottle/train/good/001.png", D1]  # random_templates[0], then the image
    assert texts == [mmad_protocol.INSTRUCTION, "Answer with the option's letter from the given choices directly! ",
                     "Following is/are 1 image of normal sample, which can be used as a template to compare the "
                     "image being queried.", "Following is the query image: ", "Following is the question list: ",
                     f"Question 2: {KIND} \nA. Scratch.\nB. Broken large.\nC. Contamination.\n"]
    assert texts[0].startswith("\nYou are an industrial inspector") and "directly.\n" in texts[0]
    assert body["temperature"] == 0.0 and len(body["messages"]) == 1
    _, texts, _ = asked[L1, f"Question 4: {COLOUR}"]
    assert texts[-1] == f"Question 4: {COLOUR} \nA. Orange.\nB. Red.\nC. Yellow.\n"


@pytest.mark.parametrize("template, reference", [("similar", "similar_templates"), ("none", None)])
def test_the_template_flag_chooses_the_reference(template, reference, handmade, tmp_path):
    server, metrics, _, _ = _eval(handmade, tmp_path / "out", "--template", template)
    colours = _images(handmade)
    for body in server.bodies:
        images, texts = _sent(body, colours)
        query = images[-1]
        if reference is None:  # 0-shot: the image alone, no template sentence
            assert images == [query] and not any(t.startswith("Following is/are") for t in texts)
        else:
            assert images == [MMAD_FILE[query][reference][0], query]
    assert metrics["source"]["template"] == template
    # The scripted model answers "E" when the reference is not the random template: nothing is right.
    assert metrics["correct"] == (0 if template == "similar" else 5)


def test_the_project_prompt_reads_strictly_with_the_file_letters(handmade, tmp_path):
    server, _, _, _ = _eval(handmade, tmp_path / "out", "--protocol", "fadtq")
    colours = _images(handmade)
    for body in server.bodies:
        images, texts = _sent(body, colours)
        assert texts[:2] == ["Reference image (normal):", "Test image:"]
        assert images == [MMAD_FILE[images[-1]]["random_templates"][0], images[-1]]
        if KIND in texts[-1]:
            assert "A. Scratch.\nC. Broken large.\nD. Contamination." in texts[-1]


def test_a_served_project_policy_defaults_to_the_project_protocol(handmade, tmp_path):
    """A server serving a folder with fadtq_inputs.json (make policy-server) serves one of the
    project's policies: asked with the project's prompt unless --protocol says otherwise."""
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "fadtq_inputs.json").write_text('{"image_size": 16}')

    class PolicyServer(FakeOpenAI):
        async def _models(self, request: web.Request) -> web.StreamResponse:
            return web.json_response({"object": "list", "data": [{"id": "fake", "root": str(policy)}]})

    from fadtq.openai_client import EndpointConfig

    with PolicyServer([scripted_model(handmade)]) as server:
        metrics = evaluate_mmad(EndpointConfig([server.url], "fake"), handmade, None, tmp_path / "out")
    assert metrics["source"]["protocol"] == "fadtq"
    _assert_tables(metrics, EXPECTED["fadtq"])


def _answer_file(handmade: Path, path: Path, change=None) -> Path:
    """MMAD's answer records for the hand-made file, as its query scripts write them, with the letters
    MMAD's reader takes from REPLIES; ``change(records)`` edits them."""
    records = []
    for image, entry in MMAD_FILE.items():
        for index, question in enumerate(entry["conversation"]):
            row = mmad_protocol.relettered({"options": question["Options"], "answer": question["Answer"]})
            options = "".join(f"{letter}. {text}\n" for letter, text in row["options"].items())
            letter, _ = mmad_protocol.read_reply(REPLIES[image, question["Question"]], row["options"])
            records.append({"image": image, "question": {"type": "text", "options": row["options"],
                                                         "text": f"Question {index + 1}: {question['Question']} \n"
                                                                 f"{options}"},
                            "question_type": question["type"], "correct_answer": row["answer"],
                            "gpt_answer": letter})
    if change:
        change(records)
    path.write_text(json.dumps(records, indent=4))
    return path


def test_mmads_own_answer_file_scores_as_the_mmad_protocol(handmade, tmp_path, capsys):
    answers = _answer_file(handmade, tmp_path / "answers_1_shot_fake.json")
    assert cli_main(["eval", "--predictions", str(answers), "--mmad", str(handmade), "--out", str(tmp_path / "o")]) == 0
    metrics = json.loads((tmp_path / "o" / "mmad_metrics.json").read_text())
    _assert_tables(metrics, {**EXPECTED["mmad"], "counts": {**EXPECTED["mmad"]["counts"], "read_by_option_text": 0,
                                                             "unread": 0}})
    assert metrics["unanswered"] == 0 and metrics["source"]["kind"] == "mmad answers"
    assert "10 questions (0 unparsed)" in capsys.readouterr().out


def test_a_dropped_answer_does_not_hide_the_next_one(handmade, tmp_path):
    """MMAD's summary.py skips the record after a dropped one (it removes from the list it iterates
    over): here D1's failed detection answer is dropped and its classification answer (right) counted."""
    def failed_first(records: list[dict]) -> None:
        records[0]["gpt_answer"] = ""  # what MMAD's GPT scripts keep of a request that failed
        del records[-1]  # and the last question was never answered

    answers = _answer_file(handmade, tmp_path / "answers.json", failed_first)
    assert cli_main(["eval", "--predictions", str(answers), "--mmad", str(handmade), "--out", str(tmp_path / "o")]) == 0
    metrics = json.loads((tmp_path / "o" / "mmad_metrics.json").read_text())
    mmad = _table(metrics["mmad_convention"])
    # DS-MVTec: detection has only the wrong normal answer left (0, and the empty anomalous half 0);
    # classification 1/1, counted; localization 0/1; product 2/2.
    assert mmad["DS-MVTec"] == pytest.approx([0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 2 / 6])
    assert metrics["mmad_convention"]["dropped"] == 1 and metrics["unanswered"] == 1
    # The project's view counts the failed answer as wrong: detection 0/1 anomalous, 0/1 normal.
    assert _table(metrics)["DS-MVTec"] == pytest.approx([0.0, 1.0, 0.0, None, 1.0, None, 0.5])


@pytest.mark.parametrize("change, fragment", [
    (lambda r: r[1].update(correct_answer="C"),
     "record 1: correct_answer: 'C', but the MMAD file's answer, re-lettered as MMAD asks, is 'B'"),
    (lambda r: r[2].update(question_type="Defect Description"), "record 2: question_type: 'Defect Description'"),
    (lambda r: r[0].update(image="DS-MVTec/bottle/image/good/999.png"), "record 0: image: 'DS-MVTec/bottle/image/go"),
    (lambda r: r.append(dict(r[4])), "record 10: image: 'DS-MVTec/bottle/image/good/000.png' has 2 questions"),
    (lambda r: r[3].pop("gpt_answer"), "record 3: gpt_answer: expected a string, got None"),
    (lambda r: r[5].update(question={"text": "Question 2: What is it?"}), "record 5: question: expected the text"),
])
def test_a_bad_answer_file_is_one_line_naming_record_and_field(change, fragment, handmade, tmp_path, capsys):
    answers = _answer_file(handmade, tmp_path / "answers.json", change)
    assert cli_main(["eval", "--predictions", str(answers), "--mmad", str(handmade), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {answers}: {fragment}") and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv, fragment", [
    (["--server", "http://h/v1", "--model", "m", "--mmad", "m.json", "--protocol", "gpt"],
     "--protocol gpt: expected one of mmad, fadtq"),
    (["--server", "http://h/v1", "--model", "m", "--mmad", "m.json", "--template", "first"],
     "--template first: expected one of random, similar, none"),
    (["--server", "http://h/v1", "--model", "m", "--mmad", "m.json", "--template", "none", "--protocol", "fadtq"],
     "--template none: not with --protocol fadtq"),
    (["--model", "m", "--protocol", "mmad"], "--protocol: only with --mmad"),
    (["--model", "m", "--template", "similar"], "--template: only with --mmad"),
    (["--predictions", "a.json", "--mmad", "m.json", "--protocol", "mmad"],
     "--protocol: not with --predictions --mmad"),
    (["--predictions", "a.json", "--mmad", "m.json", "--root", "r"], "--root: not with --predictions --mmad"),
    (["--predictions", "a.json", "--mmad", "m.json", "--limit", "3"], "--limit: not with --predictions --mmad"),
])
def test_protocol_and_template_flags_are_checked(argv, fragment, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli_main(["eval", *argv]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []


def test_synth_output_has_every_field_of_mmads_file_and_parses_as_mmad_parses_it(tmp_path):
    """What MMAD's query scripts read of an entry (GPT4/gpt4v.py parse_conversation and the main
    loops): the one key starting with "conversation", each question's Options (a letter -> text
    object holding the Answer) and Question, each type, and the template lists."""
    from fadtq.data.synth_mmad import write_mmad

    out = write_mmad(tmp_path / "mmad.json", seed=0, scale="tiny", size=16)
    data = json.loads(out.read_text())
    fields = set(next(iter(MMAD_FILE.values())))
    for key, entry in data.items():
        assert set(entry) == fields
        assert [k for k in entry if k.startswith("conversation")] == ["conversation"]
        assert entry["image_path"] == key.split("/", 2)[2]
        defective = "/good/" not in key
        assert bool(entry["mask_path"]) == defective
        if defective:
            assert (out.parent / "/".join(key.split("/")[:2]) / entry["mask_path"]).is_file()
        for question in entry["conversation"]:
            assert set(question) == {"Question", "Answer", "Options", "type", "annotation"}
            assert question["Answer"] in question["Options"] and question["annotation"] is True
        assert entry["random_templates"] and entry["similar_templates"]
        assert all((out.parent / path).is_file() for path in entry["random_templates"] + entry["similar_templates"])
