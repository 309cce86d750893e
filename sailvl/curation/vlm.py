"""The model behind model steps: load a sailvl/HF model dir once per worker; answer batched prompts and score
given answers through `sailvl.infer` (transformers `generate` / `score_answers`), or through one `VllmEngine`
per worker with `backend: vllm` (then no transformers copy of the model is loaded)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Literal

from pydantic import Field

from sailvl.curation.step import BatchParams, BatchStep, StepParams
from sailvl.errors import ConfigError

# fn(list of (images, prompt)) -> one answer per request. A prompt is a question with `<image>`
# placeholders or a whole conversation (list of {role, content}) ending in a user turn.
GenerateFn = Any
# fn(list of (images, prompt, answer)) -> one `sailvl.infer.AnswerScores` per request.
ScoreFn = Any


class ModelStepParams(BatchParams):
    model: str | None = Field(None, description="Model directory (weights + tokenizer + processor).")
    backend: Literal["transformers", "vllm"] = Field("transformers", description="Generation backend.")
    device: str = Field("auto", description="'auto' (cuda when available), 'cpu', 'cuda', 'cuda:1', ...")
    max_new_tokens: int = Field(128, ge=1, description="Generation length limit (tokens).")
    max_tiles: int | None = Field(
        None, ge=1, description="Tiles per image at inference (None: processor default)."
    )
    sort_window: int = Field(
        4,
        ge=1,
        description="transformers: a step reads batch_size x sort_window records at once and forms its batches "
        "from them sorted by length (tiles and text), so an image of 12 tiles is not padded against one of 1.",
    )
    reuse_image_embeddings: bool = Field(
        True,
        description="transformers: tile each image and run it through the vision tower once for every prompt the "
        "step asks about it (a judge's alignment score and richness question); off: every prompt re-encodes.",
    )
    vllm_window: int = Field(
        2048,
        ge=1,
        description="backend vllm: records per `LLM.generate` call (replaces batch_size; continuous "
        "batching needs many prompts in flight, so a whole shard of at most this many goes at once).",
    )


def record_window(p: ModelStepParams) -> int:
    """Records a model step handles at once: `vllm_window` on vLLM (it batches continuously), else
    `batch_size x sort_window` (batches formed from them by length)."""
    return p.vllm_window if p.backend == "vllm" else p.batch_size * p.sort_window


def load_step_model(p: ModelStepParams) -> tuple[Any, Any]:
    """`(model, processor)` of a model step's directory: the transformers model on its device in eval mode,
    or for `backend: vllm` a `VllmEngine` (no transformers copy of the weights next to it)."""
    # transformers (~3 s to import) loads only when a model step is built: every curation worker imports this
    # module with the built-in steps, and most run only cheap filters. The same holds for the imports below.
    import torch

    from sailvl.data.processor import SailVLProcessor
    from sailvl.model import load_model

    if p.model is None:
        raise ConfigError(f"model step {p.name or ''} needs `model:` (a model directory)")
    processor = SailVLProcessor.from_pretrained(p.model)
    if p.backend == "vllm":
        from sailvl.infer.vllm_backend import engine_for

        return engine_for(p.model, processor), processor
    device = ("cuda" if torch.cuda.is_available() else "cpu") if p.device == "auto" else p.device
    model = load_model(p.model, device=device)
    model.eval()
    return model, processor


def model_fns(model: Any, processor: Any, p: ModelStepParams) -> tuple[GenerateFn, ScoreFn]:
    """`generate(list[(images, prompt)]) -> list[str]` (greedy decoding, through `p.backend`) and
    `score(list[(images, prompt, answer)]) -> list[AnswerScores]` (teacher-forced) for what
    `load_step_model` returned (a transformers model, or a `VllmEngine` for `backend: vllm`)."""
    from sailvl.infer import generate, score_answers
    from sailvl.infer.vision_cache import VisionCache

    if p.backend == "vllm":
        return _vllm_fns(model, p)
    request = _requester(p)
    # A record's image is tiled and goes through the ViT once for all the prompts a step asks about it (the
    # embeddings of two windows of records are kept on the model's device).
    cache = VisionCache(2 * record_window(p)) if p.reuse_image_embeddings else None

    def generate_fn(requests: list[tuple[list[Any], Any]]) -> list[str]:
        return generate(
            model,
            processor,
            [request(ims, prompt) for ims, prompt in requests],
            max_new_tokens=p.max_new_tokens,
            batch_size=p.batch_size,
            max_tiles=p.max_tiles,
            backend=p.backend,
            cache=cache,
        )

    def score_fn(requests: list[tuple[list[Any], Any, str]]) -> list[Any]:
        return score_answers(
            model,
            processor,
            [request(ims, prompt) for ims, prompt, _ in requests],
            [answer for _, _, answer in requests],
            batch_size=p.batch_size,
            max_tiles=p.max_tiles,
            cache=cache,
        )

    return generate_fn, score_fn


class DecodedImages:
    """The last `capacity` decoded images by reference (path or bytes object): a judge asks two questions
    (and may score a caption) about each record's image, which is decoded once."""

    def __init__(self, capacity: int):
        self.capacity, self._cache = capacity, OrderedDict()

    def __call__(self, ref: Any) -> Any:
        from sailvl.infer.generate import as_image

        key = ref if isinstance(ref, str) else id(ref)
        hit = self._cache.get(key)
        if hit is not None and (isinstance(ref, str) or hit[0] is ref):
            self._cache.move_to_end(key)
            return hit[1]
        image = as_image(ref)
        self._cache[key] = (ref, image)  # keeps a bytes ref alive, so its id cannot be reused meanwhile
        if len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        return image


def _requester(p: ModelStepParams) -> Any:
    """`request(images, prompt) -> GenRequest` with images decoded once per window of records."""
    from sailvl.infer import GenRequest

    decode = DecodedImages(2 * record_window(p))

    def request(ims: list[Any], prompt: Any) -> Any:
        images = [decode(ref) for ref in ims]
        if isinstance(prompt, str):
            return GenRequest(images=images, question=prompt)
        return GenRequest(images=images, conversation=prompt)

    return request


def _vllm_fns(engine: Any, p: ModelStepParams) -> tuple[GenerateFn, ScoreFn]:
    """Generate and score through a `VllmEngine`: every request of a call in one `LLM.generate`."""
    request = _requester(p)

    def generate_fn(requests: list[tuple[list[Any], Any]]) -> list[str]:
        reqs = [request(ims, prompt) for ims, prompt in requests]
        return engine.generate(reqs, p.max_new_tokens, max_tiles=p.max_tiles)

    def score_fn(requests: list[tuple[list[Any], Any, str]]) -> list[Any]:
        reqs = [request(ims, prompt) for ims, prompt, _ in requests]
        return engine.score(reqs, [answer for _, _, answer in requests], max_tiles=p.max_tiles)

    return generate_fn, score_fn


def load_model_fns(p: ModelStepParams) -> tuple[GenerateFn, ScoreFn]:
    """Load the step's model once; its `model_fns`."""
    return model_fns(*load_step_model(p), p)


class ModelStep(BatchStep):
    """A batched step driven by a VLM. Tests (or callers) may set `generate_fn` / `score_fn` instead of a
    model dir."""

    Params = ModelStepParams
    uses_model = True

    def __init__(self, params: StepParams | None = None, **kwargs: Any):
        super().__init__(params, **kwargs)
        self.generate_fn: GenerateFn | None = None
        self.score_fn: ScoreFn | None = None

    def batch_size(self) -> int:
        """Records per `process_batch`: `record_window`."""
        return record_window(self.params)  # type: ignore[arg-type]

    def setup(self) -> None:
        if self.generate_fn is None and self.score_fn is None:
            self.generate_fn, self.score_fn = load_model_fns(self.params)  # type: ignore[arg-type]

    def ask(self, records: list[Any], prompts: list[Any]) -> list[str]:
        """One generated answer per (record images, prompt)."""
        assert self.generate_fn is not None
        return list(
            self.generate_fn([(r.images, prompt) for r, prompt in zip(records, prompts, strict=True)])
        )

    def score(self, records: list[Any], prompts: list[Any], answers: list[str]) -> list[Any]:
        """Teacher-forced `AnswerScores` of each answer to (record images, prompt)."""
        assert self.score_fn is not None
        return list(
            self.score_fn([(r.images, q, a) for r, q, a in zip(records, prompts, answers, strict=True)])
        )
