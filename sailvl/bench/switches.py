"""The speed switches `sailvl bench train` takes: recipe `parallel.*` switches for a run (`--switch`), step switches
flipped in an A/B loop (`--ab`), and sailvl's training step under them."""

from __future__ import annotations

import dataclasses

import torch

from sailvl.config import parse_config
from sailvl.errors import SailvlError
from sailvl.train.parallel import DistInfo, StepSwitches
from sailvl.train.recipe import ParallelConfig
from sailvl.train.step import train_step

# The recipe's `parallel.*` speed switches the bench takes (`--switch NAME=BOOL`; unset = the trainer's default on
# the device). Model switches change the model, so they hold for the whole run; step switches can also be A/B
# compared within one run (`--ab NAME`: a second loop of the headline kernel with that switch flipped).
MODEL_SWITCHES = ("fsdp_one_device", "liger_kernels")
STEP_SWITCHES = {  # recipe field -> StepSwitches field
    "foreach_grad_clip": "foreach_clip",
    "fused_optimizer": "fused_optimizer",
    "host_sync_every_step": "sync",
    "compile_block_mask": "compile_block_mask",
}


def parallel_switches(switches: dict[str, bool] | None) -> ParallelConfig:
    """The `parallel` block the bench trains under: `switches` (speed switches only) over the defaults."""
    switches = dict(switches or {})
    unknown = sorted(set(switches) - set(MODEL_SWITCHES) - set(STEP_SWITCHES))
    if unknown:
        known = ", ".join([*MODEL_SWITCHES, *STEP_SWITCHES])
        raise SailvlError(f"unknown bench switch {unknown[0]!r}; switches: {known}")
    return parse_config(ParallelConfig, switches)


def check_ab_name(name: str) -> None:
    """Raise unless `name` is a step switch (the only kind `--ab` can flip within one run)."""
    if name not in STEP_SWITCHES:
        raise SailvlError(
            f"--ab takes a step switch ({', '.join(STEP_SWITCHES)}), got {name!r}; model switches "
            f"({', '.join(MODEL_SWITCHES)}) change the model: compare two runs with --switch"
        )


def flip_switch(steps: StepSwitches, name: str) -> tuple[StepSwitches, dict[str, bool]]:
    """`steps` with the step switch `name` flipped, and any other switch that had to change with it (no host sync
    needs a fused optimizer: turning fusion off turns the sync back on)."""
    check_ab_name(name)
    field = STEP_SWITCHES[name]
    flipped = dataclasses.replace(steps, **{field: not getattr(steps, field)})
    if not flipped.sync and not flipped.fused_optimizer:
        if name == "host_sync_every_step":
            raise SailvlError(
                "--ab host_sync_every_step: a step without host sync needs a fused optimizer "
                "(--switch fused_optimizer=true)"
            )
        return dataclasses.replace(flipped, sync=True), {"host_sync_every_step": True}
    return flipped, {}


def sail_step_fn(model, optimizer, info: DistInfo, dtype: torch.dtype, switches: StepSwitches):
    """sailvl's training step over one optimizer step's micro-batches, under the run's step switches."""

    def step(batches: list[dict]):
        return train_step(
            model, optimizer, batches, info, dtype, 1.0,
            switches.foreach_clip, switches.sync, switches.compile_block_mask,
        )  # fmt: skip

    return step


def resolved_switches(steps: StepSwitches, one_device: bool, liger: bool) -> dict[str, bool]:
    """Every switch as the run used it (recipe names)."""
    out = {name: getattr(steps, field) for name, field in STEP_SWITCHES.items()}
    return {"fsdp_one_device": one_device, "liger_kernels": liger, **out}
