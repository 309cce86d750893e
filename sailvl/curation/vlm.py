"""The model behind model steps: load a sailvl/HF model dir once per worker; answer batched prompts through
`sailvl.infer.generate` (transformers by default, vLLM when installed and asked for) and score given answers
through `sailvl.infer.score_answers`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from sailvl.curation.base import BatchParams, BatchStep, StepParams

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


def load_step_model(p: ModelStepParams) -> tuple[Any, Any]:
    """`(model, processor)` of a model step's directory, on its device, in eval mode."""
    import torch

    from sailvl.data.processor import SailVLProcessor
    from sailvl.errors import ConfigError
    from sailvl.model import load_model

    if p.model is None:
        raise ConfigError(f"model step {p.name or ''} needs `model:` (a model directory)")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if p.device == "auto" else p.device
    model = load_model(p.model, device=device)
    model.eval()
    return model, SailVLProcessor.from_pretrained(p.model)


def model_fns(model: Any, processor: Any, p: ModelStepParams) -> tuple[GenerateFn, ScoreFn]:
    """`generate(list[(images, prompt)]) -> list[str]` (greedy decoding, through `p.backend`) and
    `score(list[(images, prompt, answer)]) -> list[AnswerScores]` (teacher-forced with transformers whatever
    the backend: vLLM serves generation only here) for a loaded model."""
    from sailvl.infer import GenRequest, generate, score_answers

    def request(ims: list[Any], prompt: Any) -> GenRequest:
        if isinstance(prompt, str):
            return GenRequest(images=list(ims), question=prompt)
        return GenRequest(images=list(ims), conversation=prompt)

    def generate_fn(requests: list[tuple[list[Any], Any]]) -> list[str]:
        return generate(
            model,
            processor,
            [request(ims, prompt) for ims, prompt in requests],
            max_new_tokens=p.max_new_tokens,
            batch_size=p.batch_size,
            max_tiles=p.max_tiles,
            backend=p.backend,
        )

    def score_fn(requests: list[tuple[list[Any], Any, str]]) -> list[Any]:
        return score_answers(
            model,
            processor,
            [request(ims, prompt) for ims, prompt, _ in requests],
            [answer for _, _, answer in requests],
            batch_size=p.batch_size,
            max_tiles=p.max_tiles,
        )

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
