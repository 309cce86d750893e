"""A stage's method settings: LoRA adapters (`lora:`), and the DPO and GRPO objectives (`dpo:`, `grpo:`).

Kept apart from `recipe` (which re-exports them) so the recipe schema stays about stages, budgets and data."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from sailvl.config import SailConfig


class LoraSpec(SailConfig):
    """LoRA adapters (through peft) on a stage's Linear layers: the targeted layers' base weights stay frozen and
    low-rank adapters train beside them; exports merge the adapters into plain weights."""

    r: int = Field(8, ge=1, description="Adapter rank.")
    alpha: float = Field(
        16.0, gt=0, description="Adapter scale numerator: the update is (alpha / r) * B @ A."
    )
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the adapters' input (0: deterministic).")
    targets: list[str] = Field(
        min_length=1,
        description=(
            "Globs over module aliases of Linear layers (as in `trainable`, without the parameter name): "
            "llm.*.self_attn.*_proj, llm.*.mlp.*_proj, vision.*.attention.*_proj, projector.linear_1. "
            "The LM head is never targeted (it is tied to the embeddings)."
        ),
    )
    keep_adapters: bool = Field(
        False,
        description=(
            "Also write the PEFT adapter directory (export/adapter: adapter_config.json + "
            "adapter_model.safetensors, over the stage's start model) beside the merged export."
        ),
    )
    quantize: Literal["4bit"] | None = Field(
        None,
        description="QLoRA: hold the targeted base layers in 4-bit NF4 through bitsandbytes (CUDA, one process).",
    )


class DpoSpec(SailConfig):
    """Direct preference optimisation (`objective: dpo`): each preference record (a Sample whose last assistant
    turn is the chosen answer and whose `metadata.rejected` is the rejected one, same images and prompt) trains
    chosen over rejected against the frozen reference (the stage's starting weights)."""

    beta: float = Field(0.1, gt=0, description="Inverse temperature of the implicit reward (DPO's beta).")
    loss: Literal["sigmoid", "ipo"] = Field(
        "sigmoid", description="sigmoid: DPO (Rafailov et al.); ipo: IPO's squared loss (Azar et al.)."
    )
    label_smoothing: float = Field(
        0.0, ge=0, lt=0.5, description="cDPO: the probability that a pair's preference label is flipped."
    )
    sft_weight: float = Field(
        0.0, ge=0, description="Add this times the chosen answers' mean token NLL (RPO-style; 0: pure DPO)."
    )

    @model_validator(mode="after")
    def _smoothing_is_sigmoid(self) -> DpoSpec:
        if self.loss == "ipo" and self.label_smoothing:
            raise ValueError("label_smoothing (cDPO) applies to the sigmoid loss, not ipo")
        return self


class GrpoSpec(SailConfig):
    """RL with verifiable rewards (`objective: grpo`): G sampled answers per prompt, rewards from pluggable
    functions, advantages normalised within each group; DAPO's options (clip-higher, token-level loss, dynamic
    sampling) are switches."""

    group_size: int = Field(4, ge=2, description="Answers sampled per prompt (G).")
    prompts_per_step: int = Field(8, ge=1, description="Prompts per optimizer step on each rank.")
    max_new_tokens: int = Field(32, ge=1, description="Rollout length cap.")
    temperature: float = Field(1.0, gt=0, description="Rollout sampling temperature.")
    top_p: float = Field(1.0, gt=0, le=1, description="Rollout nucleus sampling.")
    epsilon_low: float = Field(0.2, ge=0, description="PPO clip below 1 (ratio >= 1 - epsilon_low).")
    epsilon_high: float = Field(
        0.2, ge=0, description="PPO clip above 1; DAPO's clip-higher sets it above epsilon_low (0.28)."
    )
    loss_aggregation: Literal["sequence", "token"] = Field(
        "sequence",
        description="sequence: GRPO's mean over each answer's tokens, then over answers; token: DAPO's mean over "
        "all tokens of the step.",
    )
    dynamic_sampling: bool = Field(
        False, description="DAPO: drop groups whose rewards are all equal (zero advantage) from the update."
    )
    kl_beta: float = Field(
        0.0, ge=0, description="Weight of the k3 KL term to the reference (0: no reference)."
    )
    updates_per_rollout: int = Field(
        1,
        ge=1,
        description="Optimizer steps on each batch of rollouts (GRPO's mu); >1 makes the clip matter.",
    )
    scale_rewards: bool = Field(
        True,
        description="Divide group-centred rewards by the group's std (GRPO); false: Dr. GRPO's centring.",
    )
    rewards: dict[str, float] = Field(
        default_factory=lambda: {"exact_match": 1.0},
        description="Reward function name (sailvl.train.rewards) -> weight; the reward is the weighted sum.",
    )
    backend: Literal["transformers", "vllm"] = Field(
        "transformers",
        description="Rollout generation: transformers generate, or vLLM (GPU, when installed).",
    )
