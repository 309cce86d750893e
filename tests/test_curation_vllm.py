"""vLLM backend on CPU with a fake engine at vLLM's boundary: sailvl's tiles reach vLLM's image processor
pixel for pixel, a model step hands a whole window to one `LLM.generate` with no transformers model loaded,
and `prompt_logprobs` give the same answer tokens and margins as the transformers scoring path."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from sailvl.data.processor import SailVLProcessor
from sailvl.infer import GenRequest
from sailvl.infer.vllm_backend import VllmEngine, image_processor_kwargs

CAPTIONS = ["a red circle left of a blue square", "two green stars above a yellow triangle", "three circles"]


@pytest.fixture(scope="module")
def processor(tmp_path_factory):
    from sailvl.synth.tiny_model import train_tokenizer

    tokenizer = train_tokenizer(CAPTIONS * 20 + ["Describe the image in detail."], vocab_size=300)
    proc = SailVLProcessor(tokenizer, tile_size=112, max_tiles=6)
    directory = tmp_path_factory.mktemp("proc")
    proc.save_pretrained(directory)
    return proc, directory


def _image(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(h // 8, 1), max(w // 8, 1), 3), dtype=np.uint8)
    return Image.fromarray(small).resize((w, h), Image.BILINEAR)


@pytest.mark.parametrize("size", [(320, 240), (120, 360), (112, 112), (400, 80)])
@pytest.mark.parametrize("max_tiles", [1, 4, None])
def test_vllm_image_processor_gets_the_same_tiles(processor, size, max_tiles):
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

    proc, _ = processor
    image = _image(*size)
    kwargs = image_processor_kwargs(proc, 1, max_tiles)
    theirs = GotOcr2ImageProcessorPil()(images=[image], return_tensors="pt", **kwargs)["pixel_values"]
    ours = proc.tile_image(image, max_tiles)
    assert theirs.shape == ours.shape and torch.equal(theirs, ours)


class FakeLLM:
    """vLLM's `LLM.generate(prompts, params)` boundary, with the prompt handling of vLLM's InternVL model (its
    InternS1 processor over transformers' InternVLProcessor) read from the saved model directory: the images
    are found by `tokenizer_config.json`'s `context_image_token`, each expands to start + context x (tiles x
    `image_seq_length`) + end, the tiles cut by the GotOcr2 image processor with the prompt's
    `mm_processor_kwargs`, and the text is tokenised by the directory's tokenizer. Answers `answer <n>`; with
    `prompt_logprobs`, each prompt token gets logprob -(id % 5) / 10 and a top choice of 0 on another id."""

    def __init__(self, directory):
        from transformers import AutoTokenizer
        from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

        config = json.loads((directory / "tokenizer_config.json").read_text())
        self.context, self.start, self.end = (
            config["context_image_token"], config["start_image_token"], config["end_image_token"]
        )  # fmt: skip
        self.seq_length = json.loads((directory / "processor_config.json").read_text())["image_seq_length"]
        self.tokenizer = AutoTokenizer.from_pretrained(directory)
        self.image_processor = GotOcr2ImageProcessorPil()
        self.calls, self.token_ids = [], []

    def expand(self, prompt: dict) -> str:
        images = prompt.get("multi_modal_data", {}).get("image", [])
        pieces = prompt["prompt"].split(self.context)
        if len(pieces) - 1 != len(images):  # vLLM: "Expected there to be N prompt updates ..."
            raise ValueError(f"{len(pieces) - 1} {self.context} placeholders for {len(images)} images")
        text = pieces[0]
        for image, piece in zip(images, pieces[1:], strict=True):
            tiles = self.image_processor(images=[image], return_tensors="pt", **prompt["mm_processor_kwargs"])
            text += (
                self.start + self.context * (len(tiles["pixel_values"]) * self.seq_length) + self.end + piece
            )
        return text

    def generate(self, prompts, params):
        self.calls.append((len(prompts), params))
        outputs = []
        for i, prompt in enumerate(prompts):
            ids = self.tokenizer(self.expand(prompt), add_special_tokens=False)["input_ids"]
            self.token_ids.append(ids)
            logprobs = None
            if getattr(params, "prompt_logprobs", None):
                lp = SimpleNamespace
                logprobs = [None] + [{t: lp(logprob=-(t % 5) / 10), t + 1: lp(logprob=0.0)} for t in ids[1:]]
            outputs.append(SimpleNamespace(prompt_token_ids=ids, prompt_logprobs=logprobs,
                                           outputs=[SimpleNamespace(text=f"answer {i}")]))  # fmt: skip
        return outputs


def test_vllm_scores_match_the_transformers_tokens(processor):
    proc, directory = processor
    engine = VllmEngine("unused", proc, llm=FakeLLM(directory), sampling_params=SimpleNamespace)
    image = _image(200, 150)
    requests = [GenRequest(images=[image], question="<image>\nDescribe the image in detail.")] * 2
    requests.append(GenRequest(question="Say something."))
    scores = engine.score(requests, CAPTIONS, max_tiles=2)
    assert len(engine.llm.calls) == 1 and engine.llm.calls[0][0] == 3  # one generate call for all
    for k, (request, caption, scored) in enumerate(zip(requests, CAPTIONS, scores, strict=True)):
        conversation = [
            {"role": "user", "content": request.prompt()},
            {"role": "assistant", "content": caption},
        ]
        encoded = proc.encode_sample(conversation, [image] * len(request.images), max_tiles=2)
        # vLLM sees the very tokens the transformers backend feeds the model, image tokens included.
        assert engine.llm.token_ids[k] == encoded.input_ids.tolist()
        answer = [t for t in encoded.labels.tolist() if t != -100][:-1]  # without the closing <|im_end|>
        assert scored.tokens == answer and len(answer) > 2
        expected = torch.tensor([-(t % 5) / 10 for t in answer])
        assert torch.allclose(scored.logprobs, expected) and torch.allclose(scored.margins, expected)


def test_vllm_model_step_sends_one_window_and_loads_no_transformers_model(processor, monkeypatch):
    import sailvl.model
    from sailvl.curation.base import build_step
    from sailvl.data.sample import Sample
    from sailvl.infer import vllm_backend

    proc, directory = processor

    def no_transformers(*args, **kwargs):
        raise AssertionError("backend vllm must not load a transformers copy of the model")

    monkeypatch.setattr(sailvl.model, "load_model", no_transformers)
    fake = FakeLLM(directory)
    monkeypatch.setitem(vllm_backend._ENGINES, str(directory),
                        VllmEngine(directory, proc, llm=fake, sampling_params=SimpleNamespace))  # fmt: skip
    step = build_step({"type": "recaption", "model": str(directory), "backend": "vllm", "batch_size": 2,
                       "max_new_tokens": 5})  # fmt: skip
    records = [
        Sample(id=f"r{i}", source="t", images=[_image(100 + i, 90)],
               conversation=[{"role": "user", "content": "<image>\nDescribe."},
                             {"role": "assistant", "content": "old"}])
        for i in range(10)
    ]  # fmt: skip
    kept = list(step.run(records))
    assert [r.conversation[-1]["content"] for r in kept] == [f"answer {i}" for i in range(10)]
    assert [n for n, _ in fake.calls] == [10]  # the whole window in one call, not batch_size at a time
    assert fake.calls[0][1].max_tokens == 5 and fake.calls[0][1].temperature == 0.0
