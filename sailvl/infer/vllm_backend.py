"""Optional vLLM backend (GPU; `vllm` is imported only when an engine is built): one engine per process for
its lifetime, whole windows of prompts per `LLM.generate` call, sailvl's tiling (`max_tiles`, thumbnail)
handed to vLLM's image processor, and teacher-forced scoring from `prompt_logprobs`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sailvl.config.constants import IMAGE_PLACEHOLDER, IMG_CONTEXT
from sailvl.data.template import IGNORE_INDEX, encode_messages, prepare_conversation, render
from sailvl.errors import SailvlError
from sailvl.infer.request import GenRequest, as_image
from sailvl.infer.score import AnswerScores, last_run

# Images per prompt an engine accepts (vLLM sizes its buffers by it; a fixed value so that no batch
# rebuilds the engine). Raise it with `VllmEngine(max_images=...)` for multi-image prompts.
DEFAULT_MAX_IMAGES = 4


def image_processor_kwargs(processor, num_images: int, max_tiles: int | None) -> dict[str, Any]:
    """Per-prompt `mm_processor_kwargs` that make vLLM's InternVL image processor (transformers'
    GotOcr2ImageProcessor) cut the same tiles as `processor`: same grid limit, tile size, thumbnail,
    bicubic resize and ImageNet normalisation (pixel-identical, tested on CPU)."""
    limit = processor.tile_limit(num_images, max_tiles)
    return {
        "crop_to_patches": True,
        "min_patches": min(processor.min_tiles, limit),
        "max_patches": limit,
        "size": {"height": processor.tile_size, "width": processor.tile_size},
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225],
        "resample": 3,  # PIL bicubic
    }


class VllmEngine:
    """A vLLM engine serving a sailvl / HF InternVL model directory, built once (a worker keeps it for its
    lifetime). Tests pass `llm` (a fake with vLLM's `generate(prompts, params)`) and `sampling_params`."""

    def __init__(
        self,
        model_dir: str | Path,
        processor,
        max_images: int = DEFAULT_MAX_IMAGES,
        llm: Any = None,
        sampling_params: Any = None,
    ):
        self.model_dir, self.processor, self.max_images = str(model_dir), processor, max_images
        if llm is None:
            if not Path(model_dir).is_dir():
                raise SailvlError(f"backend 'vllm' needs a model directory, got {model_dir}")
            try:
                import vllm
            except ImportError:
                raise SailvlError(
                    "backend 'vllm' needs the vllm package (GPU only): pip install vllm"
                ) from None
            # vLLM serves transformers' InternVLForConditionalGeneration layout straight from the directory.
            # Prefix caching: prompts about one image (a judge's caption score and richness question) share the
            # image's KV blocks, and its encoder cache runs the ViT once per image.
            llm = vllm.LLM(
                model=self.model_dir, limit_mm_per_prompt={"image": max_images}, enable_prefix_caching=True
            )
            sampling_params = vllm.SamplingParams
        self.llm, self._sampling_params = llm, sampling_params

    def _prompt(self, request: GenRequest, answer: str | None, max_tiles: int | None) -> dict[str, Any]:
        """vLLM prompt dict: sailvl's chat template with one `<IMG_CONTEXT>` per image.

        vLLM serves `InternVLForConditionalGeneration` through its InternS1 processor, which finds the images in
        the prompt by transformers' `InternVLProcessor.image_token` (`<IMG_CONTEXT>`) and expands each into
        `<img>` + `<IMG_CONTEXT>` x (tiles x image tokens per tile) + `</img>`; a literal `<image>` would be
        plain text to it. The exported chat template (`processor_files.hf_chat_template`) writes the same."""
        prompt = request.prompt()
        conversation = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        images = [as_image(ref) for ref in request.images]
        if len(images) > self.max_images:
            raise SailvlError(
                f"a prompt has {len(images)} images; this vLLM engine takes at most {self.max_images}"
            )
        if answer is not None:
            conversation = [*conversation, {"role": "assistant", "content": answer}]
        messages = prepare_conversation(conversation, len(images), self.processor.system_prompt)
        text = render(
            self.processor.tokenizer,
            messages,
            add_generation_prompt=answer is None,
            chat_template=self.processor.chat_template,
        )
        out: dict[str, Any] = {"prompt": text.replace(IMAGE_PLACEHOLDER, IMG_CONTEXT)}
        if images:
            out["multi_modal_data"] = {"image": images}
            out["mm_processor_kwargs"] = image_processor_kwargs(self.processor, len(images), max_tiles)
        return out

    def generate(
        self,
        requests: list[GenRequest],
        max_new_tokens: int,
        do_sample: bool = False,
        temperature: float = 1.0,
        max_tiles: int | None = None,
    ) -> list[str]:
        """Answers to every request, in order, from one `LLM.generate` call (vLLM schedules the window)."""
        params = self._sampling_params(
            max_tokens=max_new_tokens,
            temperature=temperature if do_sample else 0.0,
            stop_token_ids=[self.processor.tokenizer.eos_token_id],
        )
        outputs = self.llm.generate([self._prompt(r, None, max_tiles) for r in requests], params)
        return [out.outputs[0].text for out in outputs]

    def score(
        self, requests: list[GenRequest], answers: list[str], max_tiles: int | None = None
    ) -> list[AnswerScores]:
        """`score_answers` on vLLM: each answer's token log-probabilities from `prompt_logprobs` (the model's
        top choice comes with them), same tokens and margins as the transformers path."""
        if len(requests) != len(answers):
            raise SailvlError(f"score needs one answer per request, got {len(answers)} for {len(requests)}")
        params = self._sampling_params(max_tokens=1, temperature=0.0, prompt_logprobs=1)
        outputs = self.llm.generate(
            [self._prompt(r, a, max_tiles) for r, a in zip(requests, answers, strict=True)], params
        )
        return [self._answer_scores(r, a, out) for r, a, out in zip(requests, answers, outputs, strict=True)]

    def _answer_scores(self, request: GenRequest, answer: str, output: Any) -> AnswerScores:
        tokens, tail = self._answer_tokens(request, answer)
        ids = list(output.prompt_token_ids)
        # Image tokens are expanded before the answer, so the answer sits at a fixed distance from the end.
        start = len(ids) - tail - len(tokens)
        if ids[start : start + len(tokens)] != tokens:
            raise SailvlError(
                "vLLM tokenised the scored answer differently from sailvl's template "
                f"(answer {answer[:60]!r}); score with the transformers backend"
            )
        logprobs, best = [], []
        for position, token in enumerate(tokens, start):
            entry = output.prompt_logprobs[position]
            logprobs.append(entry[token].logprob)
            best.append(max(lp.logprob for lp in entry.values()))
        logp = torch.tensor(logprobs, dtype=torch.float32)
        return AnswerScores(tokens, logp, logp - torch.tensor(best, dtype=torch.float32))

    def _answer_tokens(self, request: GenRequest, answer: str) -> tuple[list[int], int]:
        """The scored tokens of `answer` (as sailvl tokenises them, without the closing `<|im_end|>`) and how
        many prompt tokens follow them."""
        prompt = request.prompt()
        conversation = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        messages = prepare_conversation(
            [*conversation, {"role": "assistant", "content": answer}],
            len(request.images),
            self.processor.system_prompt,
        )
        # Images expand before the answer, so one token per image is enough to count from the end.
        _, labels = encode_messages(
            self.processor.tokenizer,
            messages,
            [1] * len(request.images),
            1,
            chat_template=self.processor.chat_template,
        )
        positions = last_run((labels != IGNORE_INDEX).nonzero().flatten())[:-1]
        if len(positions) == 0:
            return [], 0
        return labels[positions].tolist(), len(labels) - 1 - int(positions[-1])


_ENGINES: dict[str, VllmEngine] = {}


def engine_for(model_dir: str, processor) -> VllmEngine:
    """This process's engine for `model_dir` (built on first use, kept for the process's lifetime)."""
    if model_dir not in _ENGINES:
        _ENGINES[model_dir] = VllmEngine(model_dir, processor)
    return _ENGINES[model_dir]


def generate_vllm(
    model, processor, requests, max_new_tokens, do_sample, temperature, max_tiles, msac
) -> list[str]:
    """`sailvl.infer.generate(backend="vllm")`: answer `requests` with this process's engine for the directory
    `model` was loaded from (prefer `VllmEngine` directly: it needs no transformers copy of the model)."""
    if msac:
        raise SailvlError("backend 'vllm' does not implement MSAC tiling; use the transformers backend")
    model_dir = getattr(model, "name_or_path", "") or ""
    if not Path(model_dir).is_dir():
        raise SailvlError("backend 'vllm' needs a model loaded from a directory (sailvl.model.load_model)")
    return engine_for(str(model_dir), processor).generate(
        requests, max_new_tokens, do_sample, temperature, max_tiles
    )
