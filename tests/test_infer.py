"""Batched generation and streaming chat on a tiny random model against transformers' own generate."""

import importlib.util

import pytest
import torch
from PIL import Image

from sailvl.errors import SailvlError
from sailvl.infer import ChatSettings, GenRequest, chat, generate, generate_ids, stream_chat
from sailvl.model import build_model


@pytest.fixture(scope="module")
def tiny_model():
    from conftest import tiny_corpus

    from sailvl.data.tokenizer import train_bpe_tokenizer

    tokenizer = train_bpe_tokenizer(tiny_corpus(), vocab_size=512)
    return build_model("tiny", tokenizer=tokenizer, seed=0).eval()


def _images(seed, n):
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        w, h = (int(v) for v in torch.randint(60, 260, (2,), generator=gen))
        colour = tuple(int(v) for v in torch.randint(0, 256, (3,), generator=gen))
        out.append(Image.new("RGB", (w, h), colour))
    return out


def _requests():
    return [
        GenRequest(images=_images(0, 1), question="What colour is the square?"),
        GenRequest(images=_images(1, 2), question="<image> and <image>: which is red?"),
        GenRequest(images=[], question="There are 3 shapes."),
        GenRequest(
            images=_images(2, 1), conversation=[{"role": "user", "content": "A red star is on the left."}]
        ),
    ]


def test_batched_left_padded_generation_matches_one_by_one(tiny_model, tiny_processor):
    requests = _requests()
    batched = generate(tiny_model, tiny_processor, requests, max_new_tokens=6, batch_size=4)
    single = [generate(tiny_model, tiny_processor, [r], max_new_tokens=6)[0] for r in requests]
    assert batched == single
    assert any(answer for answer in batched)


def test_greedy_tokens_equal_transformers_generate(tiny_model, tiny_processor):
    request = GenRequest(images=_images(3, 1), question="What colour is the circle?")
    ours = generate_ids(tiny_model, tiny_processor, [request], max_new_tokens=8, max_tiles=2)[0]
    batch = tiny_processor.encode_prompt("What colour is the circle?", _images(3, 1), max_tiles=2)
    with torch.no_grad():
        theirs = tiny_model.generate(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            pixel_values=batch["pixel_values"],
            max_new_tokens=8,
            do_sample=False,
            eos_token_id=tiny_processor.tokenizer.eos_token_id,
            pad_token_id=tiny_processor.tokenizer.pad_token_id,
        )[0, batch["input_ids"].shape[1] :].tolist()
    eos = tiny_processor.tokenizer.eos_token_id
    assert ours == (theirs[: theirs.index(eos)] if eos in theirs else theirs)
    assert len(ours) > 0


def test_sampling_depends_on_seed_only(tiny_model, tiny_processor):
    """Same seed, same sample; other seeds, other samples; and samples are not the greedy answer. At
    temperature 5 the untrained model's next-token distribution is near uniform over 512 tokens, so two seeds
    agreeing on 8 tokens (or a sample equal to the greedy answer) has odds of about 512**-8."""
    request = [GenRequest(images=_images(4, 1), question="Describe it.")]

    def sample(seed: int) -> str:
        torch.manual_seed(seed)
        return generate(
            tiny_model, tiny_processor, request, max_new_tokens=8, do_sample=True, temperature=5.0
        )[0]

    samples = [sample(seed) for seed in (7, 7, 8, 9)]
    assert samples[0] == samples[1]
    assert len(set(samples[1:])) == 3
    greedy = generate(tiny_model, tiny_processor, request, max_new_tokens=8)[0]
    assert greedy not in samples


def test_stream_chat_pieces_join_to_the_generated_answer(tiny_model, tiny_processor):
    images = _images(5, 1)
    settings = ChatSettings(max_new_tokens=10)
    conversation = [{"role": "user", "content": "Which shape is on the top?"}]
    pieces = list(stream_chat(tiny_model, tiny_processor, conversation, images, settings))
    expected = generate(
        tiny_model, tiny_processor, [GenRequest(images, conversation=conversation)], max_new_tokens=10
    )
    assert "".join(pieces) == expected[0]


def test_interactive_chat_keeps_history_and_stops_on_empty_line(tiny_model, tiny_processor):
    lines = iter(["What colour is it?", "And the shape?", ""])
    written = []
    conversation = chat(
        tiny_model,
        tiny_processor,
        _images(6, 1),
        ChatSettings(max_new_tokens=4),
        read_line=lambda prompt: next(lines),
        write=written.append,
    )
    assert [t["role"] for t in conversation] == ["user", "assistant", "user", "assistant"]
    assert conversation[2]["content"] == "And the shape?"
    assert "".join(written) == conversation[1]["content"] + "\n" + conversation[3]["content"] + "\n"


def test_bad_requests_raise_user_errors(tiny_model, tiny_processor):
    with pytest.raises(SailvlError, match="placeholders"):
        generate(tiny_model, tiny_processor, [GenRequest(images=_images(0, 1), question="<image> <image>")])
    with pytest.raises(SailvlError, match="exactly one"):
        generate(tiny_model, tiny_processor, [GenRequest(images=[])])
    with pytest.raises(SailvlError, match="unknown generation backend"):
        generate(tiny_model, tiny_processor, [GenRequest(question="hi")], backend="onnx")


@pytest.mark.skipif(
    importlib.util.find_spec("vllm") is not None, reason="checks the message shown without vllm"
)
def test_vllm_backend_without_vllm_is_a_clear_error(tiny_model, tiny_processor):
    with pytest.raises(SailvlError, match="vllm"):
        generate(tiny_model, tiny_processor, [GenRequest(question="hi")], backend="vllm")


def test_batches_are_formed_by_length_and_answers_keep_request_order(tiny_model, tiny_processor, monkeypatch):
    """More requests than one batch: batches group requests of similar estimated length (tiles and text), and
    every answer still comes back at its request's position, equal to answering it alone."""
    from sailvl.infer.generate import prompt_length

    gen_module = importlib.import_module(
        "sailvl.infer.generate"
    )  # `sailvl.infer.generate` is also a function

    wide = Image.new("RGB", (448, 112), (200, 30, 30))  # 4 tiles + thumbnail at 112 px
    requests = [
        GenRequest(images=[wide], question="<image>\nDescribe."),
        GenRequest(question="Say a colour."),
        GenRequest(images=[wide, wide], question="<image>\n<image>\nCompare the two."),
        GenRequest(images=_images(3, 1), question="<image>\nWhat colour?"),
        GenRequest(question="Name a shape, please."),
    ]
    lengths = [prompt_length(tiny_processor, r, None) for r in requests]
    batches = []
    real = gen_module.generate_ids

    def spy(model, processor, chunk, *args):
        batches.append(sorted(prompt_length(processor, r, None) for r in chunk))
        return real(model, processor, chunk, *args)

    monkeypatch.setattr(gen_module, "generate_ids", spy)
    answers = generate(tiny_model, tiny_processor, requests, max_new_tokens=5, batch_size=2)
    assert [x for b in batches for x in b] == sorted(lengths)  # consecutive runs of the length order
    monkeypatch.setattr(gen_module, "generate_ids", real)
    assert answers == [generate(tiny_model, tiny_processor, [r], max_new_tokens=5)[0] for r in requests]


def test_infer_modules_import_one_another_without_a_circle():
    """No import circle among sailvl.infer's modules, counting imports inside functions too (a local import
    that dodges a circle still is one)."""
    import ast
    from pathlib import Path

    import sailvl.infer

    root = Path(sailvl.infer.__file__).parent
    graph = {}
    for path in root.glob("*.py"):
        if path.stem == "__init__":
            continue
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sailvl.infer."):
                targets.add(node.module.split(".")[2])
        graph[path.stem] = targets

    def reaches(start: str, goal: str, seen: set) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    circles = sorted(name for name in graph if reaches(name, name, {name}))
    assert circles == [], f"import circles through {circles}"
    assert "vllm_backend" in graph["generate"] and "request" in graph["score"]  # the graph was read
