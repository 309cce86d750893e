"""Recipe schema: model source, data defaults, parallelism and an ordered list of stages (`recipe_files` reads
the YAML, its `base:` chain, overrides and the SFT curriculum into it)."""

from __future__ import annotations

import copy
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationError, model_validator

from sailvl.config import SailConfig
from sailvl.data.config import DataConfig
from sailvl.errors import ConfigError
from sailvl.train.stage_specs import DpoSpec, GrpoSpec, LoraSpec


class ModelSpec(SailConfig):
    """Where the initial weights come from: exactly one of `preset`, `path`, or `vision` + `llm`."""

    preset: str | None = Field(
        None, description="sailvl.model preset name; random init with the recipe seed."
    )
    path: str | None = Field(None, description="HF-format model directory loaded strictly with load_model.")
    vision: str | None = Field(
        None, description="Pretrained vision tower directory (with `llm`: build_from_parts)."
    )
    llm: str | None = Field(None, description="Pretrained language model directory (with `vision`).")
    tokenizer: str | None = Field(
        None, description="Tokenizer directory for build_from_parts (default: llm)."
    )
    processor: str | None = Field(
        None,
        description="SailVLProcessor directory; default: `path`, else `tokenizer`/`llm` for build_from_parts.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        parts = self.vision is not None or self.llm is not None
        n = sum([self.preset is not None, self.path is not None, parts])
        if n != 1:
            raise ValueError("set exactly one model source: preset, path, or vision + llm")
        if parts and (self.vision is None or self.llm is None):
            raise ValueError("build from parts needs both model.vision and model.llm")
        if self.preset is not None and self.processor is None:
            raise ValueError(
                "a preset model needs model.processor (a directory with a saved SailVLProcessor)"
            )
        return self


class ParallelConfig(SailConfig):
    """How the model is placed on devices; FSDP2 shards over all ranks when more than one process runs."""

    backend: Literal["auto", "gloo", "nccl"] = Field("auto", description="auto: nccl with CUDA, else gloo.")
    mixed_precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="auto: bf16 params/compute on GPU, fp32 on CPU (bf16 is ~27x slower on CPU)."
    )
    activation_checkpointing: bool = Field(False, description="Recompute each ViT/decoder layer in backward.")
    compile: bool = Field(
        False, description="torch.compile each layer (off by default; slow to start on CPU)."
    )
    meta_init: bool = Field(False, description="Build a preset on the meta device, shard, then materialise.")
    fsdp_one_device: bool | None = Field(
        None,
        description=(
            "With one process, still wrap the model in FSDP2 on a 1-rank mesh for its MixedPrecisionPolicy (bf16 "
            "params, fp32 master weights and optimizer state) instead of autocast (None: on with CUDA)."
        ),
    )
    compile_block_mask: bool | None = Field(
        None,
        description="Build flex_attention BlockMasks with a compiled create_block_mask (None: on with CUDA).",
    )
    liger_kernels: bool = Field(
        False,
        description="Liger Triton kernels (RMSNorm, SwiGLU, RoPE) in the LLM (GPU; needs liger-kernel installed).",
    )
    foreach_grad_clip: bool | None = Field(
        None, description="Grad norm and clipping as multi-tensor kernels (None: on with CUDA)."
    )
    fused_optimizer: bool | None = Field(
        None, description="Fused AdamW, one kernel per step (None: on with CUDA)."
    )
    host_sync_every_step: bool | None = Field(
        None,
        description=(
            "Read loss and grad norm on the host every step (None: only at log steps when the optimizer is fused; "
            "a non-finite step is then skipped on the device and counted at the next log step)."
        ),
    )
    attn_implementation: str = Field(
        "auto",
        description=(
            "Attention kernel for training: auto (flex_attention on GPU, sdpa on CPU), sdpa, eager, "
            "flex_attention (GPU; LLM only; packed rows become a BlockMask that skips cross-sample blocks) or "
            "flash_attention_2 (GPU, flash-attn installed; varlen from position_ids). The packed mask format "
            "follows it unless data.attention_mask is set."
        ),
    )


_UNITS = {"K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12}


def parse_count(value: Any) -> Any:
    """A count written as an int, `131B`, `21M`, `3.5M`, `8K` or `1.31e11` -> int; other types pass to pydantic.

    A suffix that is not K, M, B/G or T, or a count that is not a whole number, is a ValueError (pydantic
    then names the key).
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, str):
        return value
    text = value.strip().replace("_", "").replace(",", "")
    scale = 1
    if text and text[-1].upper() in _UNITS:
        scale, text = _UNITS[text[-1].upper()], text[:-1]
    try:
        number = float(text) * scale
    except ValueError:
        raise ValueError(f"expected a count like 131B, 21M, 3.5M or 8000, got {value!r}") from None
    if not number.is_integer():
        raise ValueError(f"{value!r} is not a whole number")
    return int(number)


Count = Annotated[int | None, BeforeValidator(parse_count)]


class Budget(SailConfig):
    """When a stage ends: the first of the given limits reached (at least one is required).

    Counts take unit suffixes: `tokens: 131B`, `samples: 21M` (K, M, B/G, T; powers of 1000).
    """

    steps: Count = Field(None, gt=0, description="Optimizer steps of this stage.")
    samples: Count = Field(None, gt=0, description="Training samples of this stage (all ranks).")
    tokens: Count = Field(None, gt=0, description="Non-pad training tokens of this stage (all ranks).")

    @model_validator(mode="after")
    def _any(self) -> Budget:
        if self.steps is None and self.samples is None and self.tokens is None:
            raise ValueError("a budget needs steps, samples or tokens")
        return self


class StageConfig(SailConfig):
    """One training stage; its behaviour comes only from these fields."""

    name: str = Field(description="Stage name; also its output subdirectory.")
    trainable: list[str] = Field(
        description="Globs over module-alias parameter names (vision.*, llm.*, ...); may be [] with `lora`."
    )
    lr: float = Field(gt=0, description="Peak learning rate of parameters not matched by lr_groups.")
    lr_groups: dict[str, float] = Field(
        default_factory=dict, description="Glob -> peak LR for finer groups; the first matching glob wins."
    )
    weight_decay: float = Field(0.01, ge=0, description="AdamW decoupled weight decay (not on biases/norms).")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas.")
    warmup: float = Field(0.03, ge=0, lt=1, description="Linear warm-up, as a fraction of the stage budget.")
    schedule: Literal["cosine", "constant", "wsd"] = Field("cosine", description="LR shape after warm-up.")
    decay_fraction: float = Field(
        0.1, gt=0, le=1, description="wsd: final fraction of the budget spent decaying."
    )
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="Final LR as a fraction of the peak.")
    grad_clip: float = Field(1.0, gt=0, description="Clip the global grad norm to this value.")
    grad_accum: int = Field(1, ge=1, description="Micro-batches per optimizer step on each rank.")
    budget: Budget = Field(description="Stage length.")
    data: dict[str, Any] = Field(
        default_factory=dict, description="sailvl.data DataConfig fields, merged over the recipe-level data."
    )
    max_tiles: int | None = Field(None, ge=1, description="Tiles per image for sources that set none.")
    pack_length: int | None = Field(
        None, ge=16, description="Tokens per packed sequence (sets data.max_tokens)."
    )
    init_from: str = Field(
        "previous",
        description="'previous' (export of the stage before, or the model spec), 'model', or a dir.",
    )
    reinit: list[str] = Field(
        default_factory=list, description="Module aliases to re-initialise (projector)."
    )
    lora: LoraSpec | None = Field(
        None,
        description=(
            "Train LoRA adapters on these Linear layers (their base weights frozen); `trainable` still names "
            "what trains fully beside them (e.g. projector.*)."
        ),
    )
    objective: Literal["sft", "dpo", "grpo"] = Field(
        "sft",
        description="What the stage optimises: sft (token cross entropy), dpo (preference pairs), grpo (RL).",
    )
    dpo: DpoSpec | None = Field(None, description="DPO settings (objective: dpo; defaults when omitted).")
    grpo: GrpoSpec | None = Field(
        None, description="GRPO / DAPO settings (objective: grpo; defaults when omitted)."
    )
    vision_drop_path: float | None = Field(
        None,
        ge=0,
        lt=1,
        description=(
            "Stochastic-depth rate of the ViT layers in this stage (InternVL full tuning: 0.1); null keeps the "
            "tower's config. Only towers with a `drop_path_rate` (InternViT) have drop-path; others are refused."
        ),
    )
    save_every: int = Field(0, ge=0, description="Checkpoint every N steps (0: only at the end).")
    eval_every: int = Field(
        0, ge=0, description="Write an HF export every N steps for `sailvl eval` (0: off)."
    )
    keep_last: int = Field(2, ge=1, description="Checkpoints kept on disk.")
    max_bad_steps: int = Field(10, ge=0, description="Abort after this many non-finite (skipped) steps.")
    log_every: int = Field(1, ge=1, description="Write metrics every N steps.")

    @model_validator(mode="after")
    def _something_trains(self) -> StageConfig:
        if not self.trainable and self.lora is None:
            raise ValueError("trainable is empty and there is no lora: nothing would train")
        for name in ("dpo", "grpo"):
            if getattr(self, name) is not None and self.objective != name:
                raise ValueError(f"{name} settings are given but objective is {self.objective!r}")
        if self.objective == "dpo" and self.dpo is None:
            self.dpo = DpoSpec()
        if self.objective == "grpo" and self.grpo is None:
            self.grpo = GrpoSpec()
        return self


class SftCurriculum(SailConfig):
    """SFT data from a curriculum directory written by the curation split (`stage-K.jsonl`, easiest first).

    `curriculum` mode gives curriculum stage K to the K-th stage named in `stages` (their `data.sources`
    are replaced; budgets, LRs and the rest stay theirs). `mixed` mode is the baseline: the named stages
    become one stage `mixed_name` (the first's settings) over all curriculum files, every record equally
    likely, for the sum of their budgets."""

    dir: str = Field(description="Curriculum directory (`sailvl curate` output_dir/curriculum).")
    stages: list[str] = Field(
        min_length=2, description="Recipe stages, in order, that take curriculum stage 1, 2, ..."
    )
    mode: Literal["curriculum", "mixed"] = Field(
        "curriculum", description="curriculum: one stage per curriculum file; mixed: one shuffled stage."
    )
    mixed_name: str = Field("sft-mixed", description="Name of the single stage in mixed mode.")


class Recipe(SailConfig):
    """A training recipe: model + data defaults + parallelism + ordered stages."""

    name: str = Field(description="Recipe name.")
    seed: int = Field(0, description="Seed for init, data order and RNG.")
    vars: dict[str, str] = Field(
        default_factory=dict,
        description="Values substituted for ${name} in every string (override: vars.x=..).",
    )
    model: ModelSpec
    data: dict[str, Any] = Field(default_factory=dict, description="Data fields shared by all stages.")
    parallel: ParallelConfig = Field(default_factory=ParallelConfig)
    wandb: bool = Field(False, description="Also log to Weights & Biases when wandb is installed.")
    peak_flops: float | None = Field(
        None, description="Per-device peak FLOP/s for MFU (default: known GPUs)."
    )
    sft_curriculum: SftCurriculum | None = Field(
        None,
        description="Expand a curation curriculum directory into the named SFT stages (or one mixed stage).",
    )
    stages: list[StageConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_stage_names(self) -> Recipe:
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique, got {names}")
        return self

    def stage(self, name: str) -> StageConfig:
        """The stage called `name` (ConfigError listing the names otherwise)."""
        for s in self.stages:
            if s.name == name:
                return s
        raise ConfigError(
            f"recipe {self.name} has no stage {name!r}; stages: {[s.name for s in self.stages]}"
        )

    def stage_data_config(self, stage: StageConfig, attention_mask: str | None = None) -> DataConfig:
        """The stage's parsed DataConfig; `attention_mask` fills in the mask format unless the data sets one.

        Errors name the recipe key the bad value came from: `stages.N.data.sources.0.path` or `data.max_tokens`.
        """
        data = self.stage_data(stage)
        if attention_mask is not None:
            data.setdefault("attention_mask", attention_mask)
        try:
            return DataConfig.model_validate(data)
        except ValidationError as exc:
            index = self.stages.index(stage)
            problems = []
            for err in exc.errors():
                loc = [str(p) for p in err["loc"]]
                problems.append(f"{_data_key(stage, index, loc)}: {_describe(err)}")
            raise ConfigError(f"stage {stage.name}: " + "; ".join(problems)) from None

    def stage_data(self, stage: StageConfig) -> dict[str, Any]:
        """sailvl.data DataConfig fields: recipe data, then stage data; pack_length -> max_tokens, max_tiles -> sources."""
        data = deep_merge(copy.deepcopy(self.data), stage.data)
        if stage.max_tiles is not None:
            for source in data.get("sources") or []:
                if isinstance(source, dict) and source.get("max_tiles") is None:
                    source["max_tiles"] = stage.max_tiles
        if stage.pack_length is not None:
            data["max_tokens"] = stage.pack_length
        return data


def keep_all_adapters(recipe: Recipe) -> None:
    """`sailvl train --keep-adapters`: set `lora.keep_adapters` on every stage with `lora` (none is an error)."""
    stages = [s for s in recipe.stages if s.lora is not None]
    if not stages:
        raise ConfigError(f"--keep-adapters: recipe {recipe.name} has no stage with `lora`")
    for stage in stages:
        stage.lora.keep_adapters = True


def _data_key(stage: StageConfig, index: int, loc: list[str]) -> str:
    # A key set in the stage's data block is reported there; pack_length/max_tiles fill data keys too.
    if loc and loc[0] in stage.data:
        return ".".join([f"stages.{index}.data", *loc])
    if loc[:1] == ["max_tokens"] and stage.pack_length is not None:
        return f"stages.{index}.pack_length"
    return ".".join(["data", *loc]) if loc else f"stages.{index}.data"


def _describe(err: dict) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "missing"
    got = err.get("input")
    return f"{err['msg']} (got {'a mapping' if isinstance(got, dict) else repr(got)[:60]})"


def deep_merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """Merge `child` into `base` (in place): mappings recursively, `stages` lists by stage name."""
    for key, value in child.items():
        if key == "stages" and isinstance(value, list) and isinstance(base.get(key), list):
            base[key] = _merge_stages(base[key], value)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def _merge_stages(base: list[dict], child: list[dict]) -> list[dict]:
    # A child stage with a base stage's name edits it; `drop: true` removes it; new names append.
    by_name = {s.get("name"): i for i, s in enumerate(base)}
    out = copy.deepcopy(base)
    dropped = set()
    for stage in child:
        name = stage.get("name")
        if name in by_name:
            if stage.get("drop"):
                dropped.add(name)
            else:
                deep_merge(out[by_name[name]], {k: v for k, v in stage.items() if k != "drop"})
        else:
            out.append(copy.deepcopy(stage))
    return [s for s in out if s.get("name") not in dropped]
