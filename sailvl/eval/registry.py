"""Benchmark registry: VLMEvalKit benchmark names with their task type, prompt suffix, tiles and scorer."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from sailvl.errors import SailvlError

MCQ_SUFFIX = "Answer with the option's letter from the given choices directly."
SHORT_SUFFIX = "Answer the question using a single word or phrase."
YESNO_SUFFIX = "Please answer yes or no."
DIRECT_SUFFIX = "Answer the question directly."  # VLMEvalKit's MCQ prompt when a row has no options
# Suffixes of registered non-MCQ benchmarks carry their separator: VLMEvalKit appends the yes/no
# instructions after a space and the short-answer one after a newline (InternVLChat.build_prompt).
_LINE_SHORT = "\n" + SHORT_SUFFIX
_HALLUSION = " Please answer yes or no. Answer the question using a single word or phrase."

# Task types decide the prompt and the default scorer; "auto" picks per row (options -> mcq,
# yes/no answer -> yesno, else vqa) for TSVs that have no registry entry, such as the synthetic world.
TASK_TYPES = ("mcq", "yesno", "vqa", "ocr", "open", "auto")


@dataclass(frozen=True)
class BenchmarkSpec:
    """One benchmark: how to prompt it, how many tiles per image, how to score it.

    `prompt_suffix` follows the question of non-MCQ benchmarks, separator included (MCQ prompts end
    with the option-letter instruction); `max_new_tokens` is the generation budget in tokens."""

    name: str
    task: str
    scorer: str
    prompt_suffix: str = ""
    max_tiles: int = 6
    max_new_tokens: int = 16
    needs_judge: bool = False


_SPECS = [
    BenchmarkSpec("AI2D_TEST", "mcq", "mcq"),
    BenchmarkSpec("MMBench_DEV_EN_V11", "mcq", "mcq_circular"),
    BenchmarkSpec("MMStar", "mcq", "mcq"),
    BenchmarkSpec("MMMU_DEV_VAL", "mcq", "mcq", max_tiles=12),
    BenchmarkSpec("RealWorldQA", "mcq", "mcq"),
    BenchmarkSpec("HallusionBench", "yesno", "hallusion", _HALLUSION),
    BenchmarkSpec("POPE", "yesno", "yesno", ""),  # VLMEvalKit asks other Y/N sets with the bare question
    # VLMEvalKit's InternVL wrapper asks MME with the short-answer suffix, not "yes or no".
    BenchmarkSpec("MME", "yesno", "mme", " " + SHORT_SUFFIX),
    BenchmarkSpec("OCRBench", "ocr", "ocrbench", _LINE_SHORT, max_tiles=24, max_new_tokens=64),
    BenchmarkSpec("TextVQA_VAL", "vqa", "vqa", _LINE_SHORT),
    BenchmarkSpec("DocVQA_VAL", "vqa", "anls", _LINE_SHORT, max_tiles=18, max_new_tokens=32),
    BenchmarkSpec("InfoVQA_VAL", "vqa", "anls", _LINE_SHORT, max_tiles=24, max_new_tokens=32),
    BenchmarkSpec("ChartQA_TEST", "vqa", "relaxed", _LINE_SHORT, max_tiles=12),
    BenchmarkSpec("MMVet", "open", "mmvet", "", max_new_tokens=512, needs_judge=True),
    BenchmarkSpec("MathVista_MINI", "open", "mathvista", "", max_new_tokens=512, needs_judge=True),
    # The synthetic world's think benchmark (`sailvl synth --think N`, sailvl/synth/think.py): its question
    # carries the whole instruction; the budget fits a `<think>` trace (~20 tokens) plus the answer.
    BenchmarkSpec("synth_think", "vqa", "vqa_match", "", max_tiles=6, max_new_tokens=64),
]
BENCHMARKS: dict[str, BenchmarkSpec] = {spec.name: spec for spec in _SPECS}
# SPEC.md spells MMBench v1.1 without "EN"; both names resolve to the same entry.
ALIASES = {"MMBench_DEV_V11": "MMBench_DEV_EN_V11", "MMBench_V11": "MMBench_DEV_EN_V11"}

# The official OpenCompass multimodal average (8 benchmarks).
OPENCOMPASS_AVERAGE = (
    "MMBench_DEV_EN_V11",
    "MMStar",
    "MMMU_DEV_VAL",
    "MathVista_MINI",
    "HallusionBench",
    "AI2D_TEST",
    "OCRBench",
    "MMVet",
)
# The wider set SAIL-VL reports (SPEC section 4); POPE is registered but not in either average.
SAIL_REPORTED = OPENCOMPASS_AVERAGE + (
    "InfoVQA_VAL",
    "ChartQA_TEST",
    "DocVQA_VAL",
    "TextVQA_VAL",
    "RealWorldQA",
    "MME",
)

# At most this many tiles over all images of one sample (VLMEvalKit's InternVL default).
MAX_TILES_PER_SAMPLE = 64


@dataclass(frozen=True)
class InferencePreset:
    """Per-benchmark inference settings of one VLMEvalKit model adapter.

    `max_tiles` maps benchmark names to max tiles per image; others get `default_max_tiles` (None: the
    registry's value). `max_new_tokens` (None: the registry's) applies to every benchmark. MSAC is a
    separate switch (`sailvl eval --msac`): the adapter turns it on per model, not per benchmark."""

    name: str
    max_tiles: dict[str, int] = field(default_factory=dict)
    default_max_tiles: int | None = None
    max_new_tokens: int | None = None


# Numbers from VLMEvalKit's SAIL-VL adapter (ms-vlmeval 0.0.20, vlmeval/vlm/sail_vl.py):
# SailVL.set_max_num: 12 tiles for ChartQA_TEST/MMMU_DEV_VAL/MMMU_TEST/..., 18 for DocVQA_VAL/DocVQA_TEST/...,
# 24 for InfoVQA_VAL/InfoVQA_TEST/OCRBench/HRBench, 1 for video, 10 otherwise; total_max_num = 64 over the
# images of a sample (MAX_TILES_PER_SAMPLE). SailVL.__init__: max_new_tokens=1024, greedy. config.py
# SailVL.__init__ use_msac=True by default for every SAIL-VL model (pass --msac).
PRESETS: dict[str, InferencePreset] = {
    "vlmevalkit": InferencePreset("vlmevalkit"),
    "sailvl": InferencePreset(
        "sailvl",
        max_tiles={
            "ChartQA_TEST": 12,
            "MMMU_DEV_VAL": 12,
            "DocVQA_VAL": 18,
            "InfoVQA_VAL": 24,
            "OCRBench": 24,
        },
        default_max_tiles=10,
        max_new_tokens=1024,
    ),
}


def get_preset(name: str) -> InferencePreset:
    """The named inference preset; raises SailvlError listing the known names."""
    if name not in PRESETS:
        raise SailvlError(f"unknown inference preset {name!r}; known presets: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]


def apply_preset(
    spec: BenchmarkSpec, preset: InferencePreset, max_new_tokens: int | None = None
) -> BenchmarkSpec:
    """`spec` with the preset's tile cap and max_new_tokens (an explicit `max_new_tokens` wins)."""
    tiles = preset.max_tiles.get(spec.name, preset.default_max_tiles)
    tokens = max_new_tokens if max_new_tokens is not None else preset.max_new_tokens
    if tokens is not None and tokens < 1:
        raise SailvlError(f"max_new_tokens must be at least 1, got {tokens}")
    return replace(
        spec,
        max_tiles=tiles if tiles is not None else spec.max_tiles,
        max_new_tokens=tokens if tokens is not None else spec.max_new_tokens,
    )


def canonical_name(name: str) -> str | None:
    """The registry spelling of `name` (case-insensitive, aliases resolved), or None if unregistered."""
    name = ALIASES.get(name, name)
    if name in BENCHMARKS:
        return name
    lowered = {k.lower(): k for k in BENCHMARKS}
    lowered.update({k.lower(): v for k, v in ALIASES.items()})
    return lowered.get(name.lower())


def get_benchmark(name: str) -> BenchmarkSpec:
    """The registered spec for `name`; raises SailvlError listing the known names."""
    canonical = canonical_name(name)
    if canonical is None:
        known = ", ".join(sorted(BENCHMARKS))
        raise SailvlError(f"unknown benchmark {name!r}; known benchmarks: {known} (or pass a .tsv path)")
    return BENCHMARKS[canonical]


def auto_spec(name: str) -> BenchmarkSpec:
    """Spec for an unregistered TSV: task type chosen per row, scored by the matching scorer."""
    return BenchmarkSpec(name, "auto", "auto", "", max_tiles=6, max_new_tokens=24)


def resolve_benchmark(name_or_path: str, data_dir: str | Path | None) -> tuple[BenchmarkSpec, Path]:
    """Map `--bench` to (spec, tsv path): a path to an existing .tsv, or a registered name looked up
    as `<data_dir>/<NAME>.tsv`. A missing file raises one SailvlError saying where to put it."""
    path = Path(name_or_path)
    if path.suffix.lower() == ".tsv" or path.exists():
        if not path.is_file():
            raise SailvlError(f"benchmark file {path} does not exist")
        canonical = canonical_name(path.stem)
        spec = BENCHMARKS[canonical] if canonical else auto_spec(path.stem)
        return spec, path
    canonical = canonical_name(name_or_path)
    search_dir = Path(data_dir) if data_dir is not None else Path.cwd()
    if canonical is None:
        candidate = search_dir / f"{name_or_path}.tsv"
        if candidate.is_file():
            return auto_spec(name_or_path), candidate
        get_benchmark(name_or_path)  # raises with the list of known names
    spec = BENCHMARKS[canonical]
    candidate = search_dir / f"{spec.name}.tsv"
    if not candidate.is_file():
        raise SailvlError(
            f"benchmark {spec.name} needs its VLMEvalKit TSV at {candidate}; download {spec.name}.tsv "
            f"and put it in {search_dir} (or pass --data-dir DIR, or the .tsv path itself)"
        )
    return spec, candidate
