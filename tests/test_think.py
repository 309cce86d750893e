"""Thinking traces: the synthetic think task, its tokens and label mask, `sailvl chat --think`, and eval stripping."""

from __future__ import annotations

import csv
import importlib
import json

import pytest

from sailvl.data.thinking import THINK_END, THINK_START, hide_thinking, split_thinking, unclosed_thinking
from sailvl.errors import SailvlError
from sailvl.eval.aggregate import score_benchmark
from sailvl.eval.registry import BENCHMARKS, resolve_benchmark
from sailvl.eval.tsv import BenchItem

TRACE = "<think>The left digit is 3. The right digit is 4. 3 + 4 = 7.</think>"


@pytest.fixture(scope="module")
def think_world(tmp_path_factory):
    from sailvl.synth import generate_world

    out = tmp_path_factory.mktemp("think") / "world"
    generate_world(out, 10, 0, tasks=["digit"], n_bench=12, think=8)
    return out


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- splitting a reply -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply, answer, trace",
    [
        (TRACE + "7", "7", "The left digit is 3. The right digit is 4. 3 + 4 = 7."),
        ("<think>\nhm\n</think>\n\n B ", "B", "hm"),
        ("7", "7", None),
        # Qwen3-style: the prompt opened the trace, the reply only closes it.
        ("reading the digits</think>7", "7", "reading the digits"),
        # VLMEvalKit splits at the last </think> and keeps everything before it as the trace.
        ("<think>a</think>b</think>9", "9", "<think>a</think>b"),
        # Cut off by max_new_tokens: no answer to split off; the reply stands as it is (VLMEvalKit).
        ("<think>The left digit is 3.", "<think>The left digit is 3.", None),
    ],
)
def test_split_thinking_follows_vlmevalkit(reply, answer, trace):
    assert split_thinking(reply) == (answer, trace)


def test_unclosed_thinking():
    assert unclosed_thinking("<think>The left digit is 3.")
    assert not unclosed_thinking(TRACE + "7") and not unclosed_thinking("7")


@pytest.mark.parametrize(
    "reply, shown",
    [
        (TRACE + "\n\n7", "7"),
        ("  " + TRACE + "7 is the sum", "7 is the sum"),
        ("7 <think>x</think>", "7 <think>x</think>"),  # not a leading trace: untouched
        ("<thin", "<thin"),  # a bare prefix of the tag is no trace
        ("<think>never closed", ""),
        ("", ""),
    ],
)
def test_hide_thinking_gives_the_same_text_however_the_stream_is_cut(reply, shown):
    assert "".join(hide_thinking([reply])) == shown
    for i in range(len(reply) + 1):
        for j in range(i, len(reply) + 1):
            assert "".join(hide_thinking([reply[:i], reply[i:j], reply[j:]])) == shown, (i, j)
    assert "".join(hide_thinking(iter(reply))) == shown  # one character per piece


# --- synthetic world --------------------------------------------------------------------------------------


def test_think_world_has_traces_that_read_the_rendered_digits(think_world):
    from sailvl.synth.think import THINK_QUESTION, _two_digits

    records = _jsonl(think_world / "think.jsonl")
    assert len(records) == 8
    summary = json.loads((think_world / "world.json").read_text())
    assert summary["think"] == 8 and summary["bench"]["synth_think"] == {"digit_sum_think": 12}
    for i, record in enumerate(records):
        human, gpt = record["conversations"]
        assert human["value"] == "<image>\n" + THINK_QUESTION
        assert (think_world / record["image"]).is_file()
        # The digits in the trace are the ones drawn: re-draw the scene from its random stream.
        from sailvl.synth.scenes import DEFAULT_SCENES

        _, left, right = _two_digits(f"sailvl-synth/0/think/{i}", "train", DEFAULT_SCENES)
        expected = f"The left digit is {left}. The right digit is {right}. {left} + {right} = {left + right}."
        assert gpt["value"] == f"{THINK_START}{expected}{THINK_END}{left + right}"
    csv.field_size_limit(1 << 30)
    with open(think_world / "bench" / "synth_think.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert len(rows) == 12 and all(r["question"] == THINK_QUESTION for r in rows)
    assert all(int(r["answer"]) == int(r["left"]) + int(r["right"]) for r in rows)
    assert len({r["answer"] for r in rows}) > 3  # sums vary


def test_think_is_opt_in_and_a_rerun_without_it_removes_its_files(think_world, tmp_path):
    import shutil

    from sailvl.synth import generate_world

    world = tmp_path / "world"
    shutil.copytree(think_world, world)
    summary = generate_world(world, 10, 0, tasks=["digit"], n_bench=12)
    assert summary["think"] == 0 and "synth_think" not in summary["bench"]
    assert not (world / "think.jsonl").exists() and not (world / "bench" / "synth_think.tsv").exists()
    assert not list((world / "images").glob("think-*.png"))
    with pytest.raises(SailvlError, match="--think"):
        generate_world(tmp_path / "bad", 10, 0, think=-1)


# --- tokens and label mask --------------------------------------------------------------------------------


def test_tiny_tokenizer_keeps_think_tags_as_single_non_special_tokens(think_world, tmp_path):
    from transformers import AutoTokenizer

    from sailvl.synth.tiny_model import train_tokenizer, world_texts

    plain = train_tokenizer(world_texts(think_world), vocab_size=512)
    assert len(plain(THINK_START)["input_ids"]) > 1  # off by default: the pinned tiny loss curve stays
    tokenizer = train_tokenizer(world_texts(think_world), tmp_path / "tok", vocab_size=512, think_tokens=True)
    loaded = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    ids = loaded(TRACE + "7")["input_ids"]
    start, end = loaded.convert_tokens_to_ids([THINK_START, THINK_END])
    assert ids[0] == start and ids[-2] == end and ids.count(start) == ids.count(end) == 1
    assert start >= 512 and end == start + 1  # added after the trained vocabulary
    # Not special: decoding with skip_special_tokens (as generate and chat do) keeps the tags.
    assert loaded.decode(ids, skip_special_tokens=True) == TRACE + "7"
    assert tokenizer(TRACE)["input_ids"] == loaded(TRACE)["input_ids"]


def test_label_mask_of_a_think_record_covers_trace_and_answer(think_world):
    from PIL import Image

    from sailvl.config.constants import IGNORE_INDEX, IM_END
    from sailvl.data.processor import SailVLProcessor
    from sailvl.data.sample import sample_from_record
    from sailvl.synth.tiny_model import train_tokenizer, world_texts

    tokenizer = train_tokenizer(world_texts(think_world), vocab_size=512, think_tokens=True)
    processor = SailVLProcessor(tokenizer, tile_size=112, patch_size=14, downsample_ratio=0.5, max_tiles=1)
    record = _jsonl(think_world / "think.jsonl")[0]
    sample = sample_from_record(record, "think", "0", image_root=str(think_world))
    encoded = processor.encode_sample(sample.conversation, [Image.open(sample.images[0]).convert("RGB")])
    target = encoded.labels != IGNORE_INDEX
    answer = record["conversations"][1]["value"]
    assert tokenizer.decode(encoded.input_ids[target]) == answer + IM_END
    # The targets are one contiguous run at the end: the question and image are never targets.
    first = int(target.nonzero()[0])
    assert target[first:].all() and int(encoded.input_ids[first]) == tokenizer.convert_tokens_to_ids(
        THINK_START
    )


# --- chat -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "show, written",
    [(True, TRACE + "\n\n7\n"), (False, "7\n")],
)
def test_chat_shows_or_hides_the_trace_and_keeps_it_in_the_history(monkeypatch, show, written):
    chat_module = importlib.import_module("sailvl.infer.chat")  # the package exports a `chat` function

    reply = TRACE + "\n\n7"
    monkeypatch.setattr(chat_module, "stream_chat", lambda *args: iter([reply[:5], reply[5:40], reply[40:]]))
    out: list[str] = []
    conversation = chat_module.chat(
        None, None, [], chat_module.ChatSettings(), "Add the digits.", write=out.append, show_thinking=show
    )
    assert "".join(out) == written
    assert conversation[-1] == {"role": "assistant", "content": reply}


def test_hidden_unfinished_trace_says_so(monkeypatch):
    chat_module = importlib.import_module("sailvl.infer.chat")  # the package exports a `chat` function

    monkeypatch.setattr(chat_module, "stream_chat", lambda *args: iter(["<think>The left", " digit is"]))
    out: list[str] = []
    chat_module.chat(None, None, [], chat_module.ChatSettings(), "q", write=out.append, show_thinking=False)
    assert "".join(out) == chat_module.UNFINISHED_THOUGHT + "\n"


def test_chat_cli_passes_think_mode_and_rejects_others(monkeypatch, capsys, tmp_path):
    from sailvl.cli import main

    chat_module = importlib.import_module("sailvl.infer.chat")  # the package exports a `chat` function

    calls = []
    monkeypatch.setattr(chat_module, "load_model", lambda *a, **k: calls.append("load"))
    monkeypatch.setattr(chat_module.SailVLProcessor, "from_pretrained", lambda *a, **k: None)
    monkeypatch.setattr(chat_module, "chat", lambda *a, **k: calls.append(k["show_thinking"]))
    main(["chat", "hi", "--model", str(tmp_path), "--think", "hide", "--device", "cpu"])
    main(["chat", "hi", "--model", str(tmp_path), "--device", "cpu"])
    assert calls == ["load", False, "load", True]
    with pytest.raises(SystemExit) as exc:
        main(["chat", "hi", "--model", str(tmp_path), "--think", "maybe"])
    assert exc.value.code == 2 and calls == ["load", False, "load", True]  # refused before loading
    assert "--think must be one of show, hide, got 'maybe'" in capsys.readouterr().err


# --- eval -------------------------------------------------------------------------------------------------


def test_think_bench_scores_the_answer_after_the_trace_and_counts_traces():
    spec = BENCHMARKS["synth_think"]
    items = [
        BenchItem(i, "Add the two handwritten digits.", "7", category="digit_sum_think") for i in range(6)
    ]
    predictions = {
        "0": TRACE + "7",  # right
        "1": TRACE + "\n\n 7\n",  # right: the answer is stripped
        "2": "7",  # right, no trace
        "3": TRACE + "8",  # wrong sum
        "4": "<think>The left digit is 3. The right digit is 4. 3 + 4 = 7.",  # cut off: no answer
        # "5": missing
    }
    result = score_benchmark(spec, items, predictions)
    assert result["score"] == pytest.approx(50.0)
    assert (result["answers_with_think"], result["answers_unclosed_think"]) == (3, 1)


def test_mcq_and_yes_no_answers_are_read_after_the_trace():
    options = {"A": "red", "B": "blue", "C": "green", "D": "black"}
    mcq = [BenchItem(0, "Colour?", "A", options=options), BenchItem(1, "Colour?", "C", options=options)]
    # The trace names another letter: read whole, the reply names two letters and matches nothing.
    preds = {"0": "<think>B looks close, but the shape is red.</think>A", "1": "<think>It is C.</think>C"}
    result = score_benchmark(BENCHMARKS["AI2D_TEST"], mcq, preds)
    assert result["score"] == 100.0 and result["answers_with_think"] == 2
    yesno = [BenchItem(0, "Is it red?", "No", category="color", image_key="a")]
    result = score_benchmark(BENCHMARKS["POPE"], yesno, {"0": "<think>yes it could be, but</think>No"})
    assert result["pope_accuracy"] == 100.0 and result["answers_with_think"] == 1


def test_run_eval_records_answers_with_think_in_results_json(think_world, tmp_path):
    from rich.console import Console

    from sailvl.eval.runner import results_table, run_eval

    spec, path = resolve_benchmark("synth_think", think_world / "bench")
    assert spec.name == "synth_think" and spec.max_new_tokens >= 48  # room for the ~20-token trace

    def predict(items, prompts, max_tiles, max_new_tokens):
        assert all(p.endswith("Think step by step.") for p in prompts)  # the question, no suffix
        return [f"<think>sum</think>{item.answer}" if int(item.index) % 2 else item.answer for item in items]

    results = run_eval([str(path)], tmp_path / "eval", predict)
    bench = json.loads((tmp_path / "eval" / "results.json").read_text())["benchmarks"]["synth_think"]
    assert bench == results["benchmarks"]["synth_think"]
    assert bench["score"] == 100.0 and bench["n"] == 12 and bench["answers_with_think"] == 6
    cached = _jsonl(tmp_path / "eval" / "synth_think" / "predictions.jsonl")
    assert sum("</think>" in r["value"] for r in cached) == 6  # the cache keeps the raw replies
    console = Console(record=True, width=200)
    console.print(results_table(results))
    assert "6 answers after a think trace" in console.export_text()


def test_judged_benchmarks_get_the_answer_without_its_trace(tmp_path):
    from sailvl.eval.runner import evaluate_benchmark

    tsv = tmp_path / "MMVet.tsv"
    tsv.write_text("index\tquestion\tanswer\tcategory\n0\tSum?\t7\trec\n1\tSum?\t7\trec\n")
    prompts: list[str] = []

    def judge(prompt, temperature=0.0, max_tokens=128):
        prompts.append(prompt)
        return (
            "1.0" if prompt.endswith("| 7 | ") else "0.0"
        )  # MMVet's prompt ends "question | truth | pred | "

    def predict(items, prompts, max_tiles, max_new_tokens):
        return [TRACE + "7", "7"]

    result = evaluate_benchmark(BENCHMARKS["MMVet"], tsv, tmp_path / "eval", predict, judge=judge)
    assert result["score"] == 100.0 and result["answers_with_think"] == 1
    assert len(prompts) == 2 and not any(THINK_END in p for p in prompts)


def test_trace_breakdown_checks_each_step_of_a_reply():
    from sailvl.synth.think import think_answer, trace_breakdown

    truths = [(3, 4), (3, 4), (3, 4), (3, 4), (3, 4), (5, 5)]
    replies = [
        think_answer(3, 4),  # all right
        think_answer(3, 9),  # misreads the right digit, then adds and answers consistently
        "<think>The left digit is 3. The right digit is 4. 3 + 4 = 8.</think>8",  # reads right, adds wrong
        "<think>The left digit is 3. The right digit is 4. 3 + 5 = 8.</think>8",  # adds another digit than read
        "7",  # no trace
        think_answer(5, 5) + " ",  # right; surrounding blanks are ignored
    ]
    assert trace_breakdown(truths, replies) == {
        "n": 6, "format": 0.8333, "left_digit": 0.8333, "right_digit": 0.6667, "arithmetic": 0.5,
        "answer_is_trace_sum": 0.8333, "answer_correct": 0.3333, "distinct": 6,
    }  # fmt: skip
