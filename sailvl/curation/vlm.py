"""The model behind model steps: load a sailvl/HF model dir once per worker and answer batched prompts
through `sailvl.infer.generate` (transformers by default, vLLM when installed and asked for)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from sailvl.curation.base import BatchParams, BatchStep, StepParams

# fn(list of (images, prompt)) -> one answer per request. A prompt is a question with `<image>`
# placeholders or a whole conversation (list of {role, content}) ending in a user turn.
GenerateFn = Any


class ModelStepParams(BatchParams):
    model: str | None = Field(None, description="Model directory (weights + tokenizer + processor).")
    backend: Literal["transformers", "vllm"] = Field("transformers", description="Generation backend.")
    device: str = Field("auto", description="'auto' (cuda when available), 'cpu', 'cuda', 'cuda:1', ...")
    max_new_tokens: int = Field(128, ge=1, description="Generation length limit (tokens).")
    max_tiles: int | None = Field(
        None, ge=1, description="Tiles per image at inference (None: processor default)."
    )


def load_generate_fn(p: ModelStepParams) -> GenerateFn:
    """Load the model once and return `fn(list[(images, prompt)]) -> list[str]` (greedy decoding)."""
    import torch

    from sailvl.data.processor import SailVLProcessor
    from sailvl.errors import ConfigError
    from sailvl.infer import GenRequest, generate
    from sailvl.model import load_model

    if p.model is None:
        raise ConfigError(f"model step {p.name or ''} needs `model:` (a model directory)")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if p.device == "auto" else p.device
    model = load_model(p.model, device=device)
    model.eval()
    processor = SailVLProcessor.from_pretrained(p.model)

    def fn(requests: list[tuple[list[Any], Any]]) -> list[str]:
        reqs = [
            GenRequest(images=list(ims), question=prompt)
            if isinstance(prompt, str)
            else GenRequest(images=list(ims), conversation=prompt)
            for ims, prompt in requests
        ]
        return generate(
            model,
            processor,
            reqs,
            max_new_tokens=p.max_new_tokens,
            batch_size=p.batch_size,
            max_tiles=p.max_tiles,
            backend=p.backend,
        )

    return fn


class ModelStep(BatchStep):
    """A batched step driven by a VLM. Tests (or callers) may set `generate_fn` instead of a model dir."""

    Params = ModelStepParams
    uses_model = True

    def __init__(self, params: StepParams | None = None, **kwargs: Any):
        super().__init__(params, **kwargs)
        self.generate_fn: GenerateFn | None = None

    def setup(self) -> None:
        if self.generate_fn is None:
            self.generate_fn = load_generate_fn(self.params)  # type: ignore[arg-type]

    def ask(self, records: list[Any], prompts: list[Any]) -> list[str]:
        """One generated answer per (record images, prompt)."""
        assert self.generate_fn is not None
        return list(
            self.generate_fn([(r.images, prompt) for r, prompt in zip(records, prompts, strict=True)])
        )
