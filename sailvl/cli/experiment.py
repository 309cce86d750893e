"""`sailvl experiment NAME` (recaption, curriculum, scaling, vit-transfer), `experiment report`, `base` and
`fresh-llm`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from sailvl.cli.app import app

experiment_app = typer.Typer(
    help="The papers' claims at toy scale: real `sailvl` runs on the synthetic world, arms with equal budgets, "
    "mean +- std over seeds, a plot and a verdict.",
    no_args_is_help=True,
)
app.add_typer(experiment_app, name="experiment")
NAMES = ("recaption", "curriculum", "scaling", "vit-transfer")  # sailvl.experiment.registry.EXPERIMENTS


def _register(name: str) -> None:
    def command(
        out: Path = typer.Option(
            Path(f"runs/experiment-{name}"), "--out", help="Output directory (one per seed)."
        ),
        seeds: int = typer.Option(3, "--seeds", help="Number of seeds (worlds and runs) to average over."),
        first_seed: int = typer.Option(0, "--first-seed", help="Seed of the first repeat."),
        quick: bool = typer.Option(
            False, "--quick", help="Tiny budgets: checks the pipeline, not the outcome."
        ),
        jobs: int = typer.Option(
            1, "--jobs", help="Seeds run at once, the CPU threads split between them (2 on a 2-core box)."
        ),
    ) -> None:
        from sailvl.experiment.base import SUMMARY
        from sailvl.experiment.registry import get_experiment
        from sailvl.experiment.run import run_experiment

        experiment = get_experiment(name)
        report = run_experiment(experiment, out, seeds=seeds, quick=quick, first_seed=first_seed, jobs=jobs)
        typer.echo(json.loads((report.parent.parent / SUMMARY).read_text())["verdict"])
        typer.echo(f"report: {report} (and {report.with_suffix('.html')})")

    command.__doc__ = (
        f"Run the `{name}` experiment (see EXPERIMENTS.md) and write OUT/results.json and OUT/report/."
    )
    experiment_app.command(name)(command)


for _name in NAMES:
    _register(_name)


@experiment_app.command("report")
def report_command(
    out: Path = typer.Argument(..., help="An experiment's --out directory, or a directory of them."),
) -> None:
    """Write report/report.md and report.html for each experiment directory (with a results.json) under OUT."""
    from sailvl.errors import SailvlError
    from sailvl.experiment.base import SUMMARY
    from sailvl.experiment.report import write_experiment_report

    dirs = [out] if (out / SUMMARY).is_file() else sorted(p.parent for p in out.glob(f"*/{SUMMARY}"))
    if not dirs:
        raise SailvlError(
            f"{out} holds no experiment {SUMMARY}; run `sailvl experiment NAME --out DIR` first"
        )
    for directory in dirs:
        typer.echo(f"report: {write_experiment_report(directory)}")


@experiment_app.command("fresh-llm")
def fresh_llm_command(
    world: Path = typer.Argument(..., help="Synthetic world directory (its text trains the tokenizer)."),
    out: Path = typer.Argument(..., help="Where to write the causal LM + tokenizer (build_from_parts' llm)."),
    seed: int = typer.Option(1000, "--seed", help="Init seed; differ from the ViT model's seed."),
) -> None:
    """Write a random-init tiny causal LM for the ViT-transfer arms."""
    from sailvl.experiment.vit_transfer import fresh_llm

    typer.echo(f"fresh LLM written to {fresh_llm(world, out, seed)}")


@experiment_app.command("base")
def base_command(
    out: Path = typer.Option(
        ..., "--out", help="The base's directory (a finished one is read back, not rebuilt)."
    ),
    seed: int = typer.Option(
        0, "--seed", help="Seed of the base (its worlds are seeded apart from experiments)."
    ),
    quick: bool = typer.Option(False, "--quick", help="Tiny budgets and no gate: checks the pipeline only."),
    world_images: int | None = typer.Option(None, "--world-images", help="Images of the base world."),
    text_steps: int | None = typer.Option(None, "--text-steps", help="Optimizer steps of the text LLM."),
    vit_steps: int | None = typer.Option(
        None, "--vit-steps", help="Optimizer steps of the ViT's captioning run."
    ),
    gate: str | None = typer.Option(
        None, "--gate", help='Least held-out text-QA accuracy per style, e.g. "short=0.8,mcq=0.5" ("": none).'
    ),
) -> None:
    """Build the pretrained tiny base of one seed: a text-pretrained LLM (gated on held-out text QA) and a
    captioning-pretrained ViT, never aligned to each other; prints the model directory."""
    from dataclasses import replace

    from sailvl.experiment.pretrained import FULL, QUICK, build_base, parse_gate

    size = QUICK if quick else FULL
    changes = {"world_images": world_images, "text_steps": text_steps, "vit_steps": vit_steps}
    size = replace(size, **{k: v for k, v in changes.items() if v is not None})
    if gate is not None:
        size = replace(size, gate=parse_gate(gate))
    typer.echo(f"base model: {build_base(seed, out, size)}")
