"""Process group, device mesh, FSDP2 sharding, activation checkpointing and precision choice."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from sailvl.errors import SailvlError


@dataclass
class DistInfo:
    """Where this process sits: rank, world size, local rank, device, and the 1-D data-parallel mesh."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    mesh: object | None = None
    host_group: object | None = None  # CPU (gloo) group for host numbers; None: the default group is gloo

    @property
    def is_main(self) -> bool:
        """True on rank 0, which alone logs and writes shared files."""
        return self.rank == 0


def init_distributed(backend: str = "auto", one_device_mesh: bool = False) -> DistInfo:
    """Join the process group torchrun describes (RANK/WORLD_SIZE/LOCAL_RANK), or run as one process.

    torchrun's launch variables are the launcher's protocol, not sailvl settings, so they are read here.
    `one_device_mesh`: a single process still gets a 1-rank group and mesh, so `parallelize` wraps the model in
    FSDP2 and its `MixedPrecisionPolicy` (bf16 parameters for compute over fp32 master weights, no autocast
    re-casting every weight each micro-batch).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if backend == "auto":
        backend = "nccl" if cuda else "gloo"
    if world_size == 1:
        if not one_device_mesh:
            return DistInfo(device=device)
        if not dist.is_initialized():
            dist.init_process_group(backend=backend, store=dist.HashStore(), rank=0, world_size=1)
        from torch.distributed.device_mesh import init_device_mesh

        return DistInfo(device=device, mesh=init_device_mesh(device.type, (1,), mesh_dim_names=("dp",)))
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
    from torch.distributed.device_mesh import init_device_mesh

    mesh = init_device_mesh(device.type, (world_size,), mesh_dim_names=("dp",))
    # Step counts are host numbers: summing them over NCCL would mean a device round trip and a host sync.
    host_group = None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")
    return DistInfo(rank, world_size, local_rank, device, mesh, host_group)


def param_dtype(device: torch.device, mixed_precision: str) -> torch.dtype:
    """Compute dtype: bf16 on GPU under `auto`, fp32 on CPU (bf16 kernels are far slower there)."""
    if mixed_precision == "bf16":
        return torch.bfloat16
    if mixed_precision == "fp32":
        return torch.float32
    return torch.bfloat16 if device.type == "cuda" else torch.float32


@dataclass(frozen=True)
class StepSwitches:
    """Step-overhead switches resolved for a device (`step_switches`)."""

    foreach_clip: bool
    fused_optimizer: bool
    sync: bool
    compile_block_mask: bool = False


def step_switches(parallel, device: torch.device) -> StepSwitches:
    """The recipe's `parallel` step switches with None resolved per device: on CUDA foreach clipping, fused AdamW
    and no per-step host sync; on CPU the exact single-tensor path of the checked-in loss curves."""
    cuda = device.type == "cuda"
    fused = cuda if parallel.fused_optimizer is None else parallel.fused_optimizer
    sync = (not fused) if parallel.host_sync_every_step is None else parallel.host_sync_every_step
    if not sync and not fused:
        raise SailvlError("parallel.host_sync_every_step: false needs parallel.fused_optimizer: true")
    foreach = cuda if parallel.foreach_grad_clip is None else parallel.foreach_grad_clip
    mask = cuda if parallel.compile_block_mask is None else parallel.compile_block_mask
    return StepSwitches(foreach_clip=foreach, fused_optimizer=fused, sync=sync, compile_block_mask=mask)


# The packed-row attention mask each attention kernel needs (sailvl.data DataConfig.attention_mask).
_MASK_FORMATS = {"flex_attention": "flex", "flash_attention_2": "none", "flash_attention_3": "none"}


def resolve_attention(attn_implementation: str, device: torch.device) -> str:
    """`auto`: flex_attention on CUDA (packed rows skip cross-sample blocks: 1.32x sdpa's tokens/s at
    8192-token packs on an H200, BENCHMARKS.md), sdpa elsewhere (flex has no CPU backward); others unchanged."""
    if attn_implementation != "auto":
        return attn_implementation
    return "flex_attention" if device.type == "cuda" else "sdpa"


def mask_format_for(attn_implementation: str) -> str:
    """The packed mask format for a kernel: a BlockMask for flex, none for flash varlen, else a 4D bool mask."""
    return _MASK_FORMATS.get(attn_implementation, "bool")


def set_attention(model: nn.Module, attn_implementation: str, device: torch.device | None = None) -> None:
    """Select the attention kernel; flex_attention goes to the LLM only (image tiles need no mask: sdpa).

    With `device` given, a kernel that cannot train there is refused up front (flex_attention has no CPU
    backward in torch 2.13) instead of failing at the first backward.
    """
    if attn_implementation == "flex_attention" and device is not None and device.type == "cpu":
        raise SailvlError(
            "parallel.attn_implementation=flex_attention cannot train on CPU (no flex backward there); "
            "use sdpa or eager"
        )
    if attn_implementation == "flex_attention":
        model.set_attn_implementation({"text_config": "flex_attention", "vision_config": "sdpa"})
    else:
        model.set_attn_implementation(attn_implementation)


def transformer_blocks(model: nn.Module) -> list[nn.Module]:
    """Every repeated block (children of ModuleLists named `layer`/`layers`): ViT layers and decoder layers."""
    blocks = []
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and name.rsplit(".", 1)[-1] in ("layer", "layers"):
            blocks.extend(module)
    return blocks


def apply_liger_kernels(model: nn.Module) -> None:
    """Swap the LLM's RMSNorm, SwiGLU MLP and RoPE for Liger's fused Triton kernels (in place, before sharding).

    The loss keeps sailvl's target-only logits path (`token_loss_sum`), so Liger's fused linear cross-entropy is
    not used: the LM head already runs only at target positions.
    """
    try:
        from liger_kernel.transformers import _apply_liger_kernel_to_instance
    except ImportError:
        raise SailvlError(
            "parallel.liger_kernels: true needs the liger-kernel package (pip install liger-kernel, GPU only)"
        ) from None
    language_model = getattr(getattr(model, "model", model), "language_model", model)
    _apply_liger_kernel_to_instance(
        model=language_model, rope=True, rms_norm=True, swiglu=True, cross_entropy=False,
        fused_linear_cross_entropy=False,
    )  # fmt: skip


def apply_activation_checkpointing(model: nn.Module) -> None:
    """Recompute every transformer block in backward (HF's gradient checkpointing, non-reentrant)."""
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def parallelize(
    model: nn.Module,
    info: DistInfo,
    dtype: torch.dtype,
    activation_checkpointing: bool = False,
    compile: bool = False,
) -> nn.Module:
    """Order as in torchtitan: activation checkpointing, compile, fully_shard per block, then the root.

    With one process and no mesh the model is only moved to the device (no wrapper); otherwise (several ranks,
    or one with `init_distributed(one_device_mesh=True)`) every ViT and decoder layer becomes an FSDP2 unit on
    the 1-D mesh, with `dtype` params for compute and fp32 reductions and master weights.
    """
    if activation_checkpointing:
        apply_activation_checkpointing(model)
    blocks = transformer_blocks(model)
    if compile:
        for block in blocks:
            block.compile()
    if info.mesh is None:  # one process without `one_device_mesh`: plain module, autocast in the step
        return model.to(device=info.device) if model.device.type != "meta" else model
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mp = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)
    for block in blocks:
        fully_shard(block, mesh=info.mesh, mp_policy=mp)
    fully_shard(model, mesh=info.mesh, mp_policy=mp)
    return model


def materialize(model: nn.Module, device: torch.device) -> None:
    """Allocate a meta-built (possibly sharded) model on `device` and initialise it as its class does.

    `to_empty` leaves garbage everywhere, including what `__init__` computed rather than sampled (RoPE
    `inv_freq`, position-id buffers, InternViT layer-scale constants and zero position embeddings) and it
    unties tied embeddings. transformers' `initialize_weights` dispatches every sub-model's own `_init_weights`
    (buffers included), after clearing the "already initialised" flags; the ties are then restored.
    """
    model.to_empty(device=device)
    for module in model.modules():
        module.__dict__.pop("_is_hf_initialized", None)
        for tensor in list(module.parameters(recurse=False)) + list(module.buffers(recurse=False)):
            tensor.__dict__.pop("_is_hf_initialized", None)
    with torch.no_grad():
        model.initialize_weights()
    if getattr(model.config, "tie_word_embeddings", False):
        model.tie_weights()


def load_full_state(model: nn.Module, full_state: dict[str, torch.Tensor] | None, info: DistInfo) -> None:
    """Fill a sharded, materialised model from rank 0's full state dict (other ranks pass None).

    Tensors go one at a time through one reused buffer the size of the largest: rank 0 broadcasts each, and
    every rank copies its dim-0 chunk into its FSDP2 shard (a plain tensor, e.g. a buffer, is copied whole).
    A rank other than 0 thus never holds more than its shards plus one full tensor; a fresh buffer per
    tensor would leave freed blocks that glibc keeps (they showed as +30% of the model on rank 1). Keys
    must match exactly (checked on every rank, so a mismatch raises everywhere instead of hanging).
    """
    targets = model.state_dict()
    shapes = [{k: tuple(v.shape) for k, v in full_state.items()}] if info.is_main else [None]
    dist.broadcast_object_list(shapes, src=0)
    expected = {k: tuple(v.shape) for k, v in targets.items()}
    if shapes[0] != expected:
        wrong = sorted(k for k in set(expected) | set(shapes[0]) if expected.get(k) != shapes[0].get(k))
        raise SailvlError(
            f"the start weights do not match the model config ({len(wrong)} keys differ: {wrong[:5]})"
        )
    largest = max(t.numel() * t.element_size() for t in targets.values())
    buffer = torch.empty(largest, dtype=torch.uint8, device=info.device)
    with torch.no_grad():
        for key in sorted(targets):
            target = targets[key]
            full = buffer[: target.numel() * target.element_size()].view(target.dtype).view(target.shape)
            if info.is_main:
                full.copy_(full_state[key])
            dist.broadcast(full, src=0)
            if hasattr(target, "to_local"):
                chunks = full.chunk(info.world_size, dim=0)
                local = target.to_local()
                if info.rank < len(chunks) and local.numel():
                    local.copy_(chunks[info.rank])
            else:
                target.copy_(full)


def all_reduce_host(values: list[float | int], info: DistInfo) -> list[float]:
    """Sum host numbers over ranks in one collective on the host group (fp64: counts stay exact below 2^53).

    The buffer is NumPy memory lent to torch: it never lives on a GPU, so summing and reading it back never
    waits for the device (NCCL would need a device copy and a read-back, i.e. a host sync).
    """
    buffer = np.asarray(values, dtype=np.float64)
    if info.world_size > 1:
        dist.all_reduce(torch.from_numpy(buffer), op=dist.ReduceOp.SUM, group=info.host_group)
    return buffer.tolist()


def all_reduce_tensor_sum(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a device tensor over ranks without reading it on the host (itself in a single process)."""
    if info.world_size == 1:
        return value
    value = value.clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op in a single process)."""
    if info.world_size > 1:
        dist.barrier()
