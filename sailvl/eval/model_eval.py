"""Wires a model directory into the eval runner: greedy predictor, judge, trainer-state budget, sharding."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from sailvl.data.images import load_image
from sailvl.data.processor import SailVLProcessor
from sailvl.errors import SailvlError
from sailvl.eval.distributed import EvalShard
from sailvl.eval.forced_choice import FORCED_CHOICE_SCORERS, forced_choice_score
from sailvl.eval.judges import build_judge
from sailvl.eval.registry import get_preset, resolve_benchmark
from sailvl.eval.runner import RESULTS_FILE, Predictor, pin_predictions, run_eval
from sailvl.eval.tsv import BenchItem
from sailvl.infer import BACKENDS, GenRequest, generate
from sailvl.model import load_model

TRAINER_STATE = "trainer_state.json"
# The cumulative clock (whole run) and the stage clock of the evaluated checkpoint (sailvl.train.trainer).
_BUDGET_KEYS = (
    "tokens_seen",
    "samples_seen",
    "global_step",
    "step",
    "stage",
    "stage_tokens_seen",
    "stage_samples_seen",
)


def read_trainer_state(model_dir: str | Path) -> dict:
    """The run clock (`_BUDGET_KEYS`) from the model directory's trainer_state.json, or {}."""
    path = Path(model_dir) / TRAINER_STATE
    if not path.is_file():
        return {}
    state = json.loads(path.read_text())
    return {k: state[k] for k in _BUDGET_KEYS if k in state}


def item_images(item: BenchItem, max_side: int | None = None) -> list[Image.Image]:
    """The item's images decoded as the training loader decodes them (EXIF transpose, alpha on white,
    16-bit, reduced-scale JPEG decoding down to `max_side` = tile size x max tiles)."""
    return [load_image(data, max_side=max_side) for data in item.images]


def model_predictor(model, processor, msac: bool = False, backend: str = "transformers") -> Predictor:
    """A Predictor running `sailvl.infer.generate` greedily on each batch the runner hands it.

    With `msac`, single-image items get the MSAC second tiling pass; multi-image items do not (as in
    VLMEvalKit's SAIL-VL adapter, which applies MSAC only when a sample has one image)."""

    def run(requests: list, max_tiles: int, max_new_tokens: int, use_msac: bool) -> list[str]:
        if not requests:
            return []
        return generate(
            model,
            processor,
            requests,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            batch_size=len(requests),
            max_tiles=max_tiles,
            msac=use_msac,
            backend=backend,
        )

    def predict(items: list[BenchItem], prompts: list[str], max_tiles: int, max_new_tokens: int) -> list[str]:
        max_side = processor.tile_size * max_tiles
        requests = [
            GenRequest(images=item_images(it, max_side), question=p)
            for it, p in zip(items, prompts, strict=True)
        ]
        single = [i for i, it in enumerate(items) if msac and len(it.images) == 1]
        others = [i for i in range(len(items)) if i not in set(single)]
        answers: dict[int, str] = {}
        for group, use_msac in ((single, True), (others, False)):
            replies = run([requests[i] for i in group], max_tiles, max_new_tokens, use_msac)
            answers.update(zip(group, replies, strict=True))
        return [answers[i].strip() for i in range(len(items))]

    return predict


def load_model_and_processor(model_dir: str | Path, device: str = "cpu"):
    """(model, processor) from a sailvl/HF model directory (strict safetensors load)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise SailvlError(f"model directory {model_dir} does not exist")
    return load_model(model_dir, device=device), SailVLProcessor.from_pretrained(model_dir)


def evaluate_model(
    model_dir: str | Path,
    benches: list[str],
    out_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    max_tiles: int | None = None,
    batch_size: int = 8,
    judge: str | None = None,
    limit: int | None = None,
    device: str = "cpu",
    progress: Callable[[str, int], None] | None = None,
    preset: str = "vlmevalkit",
    msac: bool = False,
    max_new_tokens: int | None = None,
    backend: str = "transformers",
    matching: str = "exact",
    seed: int = 0,
    shard: EvalShard = EvalShard(),
    forced_choice: bool = False,
) -> dict | None:
    """Evaluate the model in `model_dir` on `benches`; results go to `out_dir` (default MODEL/eval).

    `judge` is `openai:MODEL[@BASE_URL]` or a judge model directory. The model's trainer_state.json
    budget (tokens_seen, samples_seen) is copied into results.json so a series of checkpoints can be
    fitted with `sailvl scaling fit`. Under sharding (torchrun) every rank predicts its share and rank 0
    scores and returns the results; the others return None. `forced_choice`: open-answer benchmarks also get
    `forced_choice` (`sailvl.eval.forced_choice`, computed on rank 0) in results.json."""
    if backend not in BACKENDS:
        raise SailvlError(f"unknown --backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "vllm" and msac:
        raise SailvlError("--msac needs the transformers backend (vLLM tiles images itself)")
    get_preset(preset)
    for bench in benches:
        resolve_benchmark(bench, data_dir)  # a missing benchmark file fails before the model loads
    out_dir = Path(out_dir) if out_dir is not None else Path(model_dir) / "eval"
    settings = {"msac": msac, "backend": backend}
    if Path(model_dir).is_dir():  # caches made with other settings are refused before the model loads too
        pin_predictions(benches, out_dir, data_dir, preset, max_tiles, max_new_tokens, judge is not None,
                        model_dir, settings, shard)  # fmt: skip
    text_judge = build_judge(judge, device, seed) if judge is not None else None
    model, processor = load_model_and_processor(model_dir, device)
    info = {"model": str(model_dir), "msac": msac, **read_trainer_state(model_dir)}
    results = run_eval(
        benches,
        out_dir,
        model_predictor(model, processor, msac, backend),
        data_dir=data_dir,
        batch_size=batch_size,
        max_tiles=max_tiles,
        judge=text_judge,
        limit=limit,
        model_info=info,
        progress=progress,
        preset=preset,
        max_new_tokens=max_new_tokens,
        matching=matching,
        seed=seed,
        shard=shard,
        model_dir=model_dir,
        predictor_settings=settings,
    )
    if results is not None and forced_choice:
        for bench in benches:
            spec, path = resolve_benchmark(bench, data_dir)
            if spec.scorer in FORCED_CHOICE_SCORERS and spec.name in results["benchmarks"]:
                score = forced_choice_score(model, processor, spec, path, limit, max_tiles, batch_size)
                if score["n"]:  # an "auto" TSV of MCQ or yes/no rows has no open answer to choose
                    results["benchmarks"][spec.name]["forced_choice"] = score
        (out_dir / RESULTS_FILE).write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return results
