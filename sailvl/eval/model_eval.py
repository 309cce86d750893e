"""Wires a model directory into the eval runner: greedy predictor, LLM judge, trainer-state budget."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from sailvl.errors import SailvlError
from sailvl.eval.runner import Judge, Predictor, run_eval
from sailvl.eval.tsv import BenchItem

TRAINER_STATE = "trainer_state.json"
_BUDGET_KEYS = ("tokens_seen", "samples_seen", "step", "stage")

_JUDGE_PROMPT = (
    "You grade answers to questions about images. Compare the model's answer with the reference answer "
    "and rate its correctness from 0.0 (wrong) to 1.0 (fully right); partly right answers get a value in "
    "between. For math, only the final value counts.\n"
    "Question: {question}\nReference answer: {answer}\nModel answer: {prediction}\n"
    "Reply with the number only."
)


def read_trainer_state(model_dir: str | Path) -> dict:
    """{tokens_seen, samples_seen, step, stage} from the model directory's trainer_state.json, or {}."""
    path = Path(model_dir) / TRAINER_STATE
    if not path.is_file():
        return {}
    state = json.loads(path.read_text())
    return {k: state[k] for k in _BUDGET_KEYS if k in state}


def _decode(images: list[bytes]) -> list[Image.Image]:
    out = []
    for data in images:
        with Image.open(io.BytesIO(data)) as image:
            out.append(image.convert("RGB"))
    return out


def model_predictor(model, processor, msac: bool = False) -> Predictor:
    """A Predictor running `sailvl.infer.generate` greedily on each batch the runner hands it."""
    from sailvl.infer import GenRequest, generate

    def predict(items: list[BenchItem], prompts: list[str], max_tiles: int, max_new_tokens: int) -> list[str]:
        requests = [
            GenRequest(images=_decode(it.images), question=p) for it, p in zip(items, prompts, strict=True)
        ]
        answers = generate(
            model,
            processor,
            requests,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            batch_size=len(requests),
            max_tiles=max_tiles,
            msac=msac,
        )
        return [a.strip() for a in answers]

    return predict


def parse_judge_score(text: str) -> float:
    """The first number in the judge's reply, clamped to [0, 1]; 0 when there is none."""
    match = re.search(r"\d+(?:\.\d+)?", text)
    return min(1.0, max(0.0, float(match.group()))) if match else 0.0


def llm_judge(model, processor) -> Judge:
    """A Judge that asks a (text-only) judge model to grade one prediction against the reference."""
    from sailvl.infer import GenRequest, generate

    def judge(item: BenchItem, prediction: str) -> float:
        prompt = _JUDGE_PROMPT.format(question=item.question, answer=item.answer, prediction=prediction)
        reply = generate(model, processor, [GenRequest(images=[], question=prompt)], max_new_tokens=8)[0]
        return parse_judge_score(reply)

    return judge


def load_model_and_processor(model_dir: str | Path, device: str = "cpu"):
    """(model, processor) from a sailvl/HF model directory (strict safetensors load)."""
    from sailvl.data.processor import SailVLProcessor
    from sailvl.model import load_model

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
    judge_dir: str | Path | None = None,
    limit: int | None = None,
    device: str = "cpu",
    progress: Callable[[str, int], None] | None = None,
) -> dict:
    """Evaluate the model in `model_dir` on `benches`; results go to `out_dir` (default MODEL/eval).

    The model's trainer_state.json budget (tokens_seen, samples_seen) is copied into results.json
    so a series of checkpoints can be fitted with `sailvl scaling fit`."""
    from sailvl.eval.registry import resolve_benchmark

    for bench in benches:
        resolve_benchmark(bench, data_dir)  # a missing benchmark file fails before the model loads
    model, processor = load_model_and_processor(model_dir, device)
    judge = llm_judge(*load_model_and_processor(judge_dir, device)) if judge_dir is not None else None
    info = {"model": str(model_dir), **read_trainer_state(model_dir)}
    out_dir = Path(out_dir) if out_dir is not None else Path(model_dir) / "eval"
    return run_eval(
        benches,
        out_dir,
        model_predictor(model, processor),
        data_dir=data_dir,
        batch_size=batch_size,
        max_tiles=max_tiles,
        judge=judge,
        limit=limit,
        model_info=info,
        progress=progress,
    )
