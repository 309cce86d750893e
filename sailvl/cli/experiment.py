"""`sailvl experiment NAME` (recaption, curriculum, scaling, vit-transfer), `experiment report`, `base`, and the
helpers experiment plans call: `assemble`, `captions`, `same-images` and `orders`."""

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
        base: Path | None = typer.Option(
            None,
            "--base",
            help="A built pretrained base (`experiment base --out`) every seed starts from "
            "(vit-transfer, recaption; default: each seed builds its own).",
        ),
        subprocesses: bool = typer.Option(
            False,
            "--subprocesses",
            help="Run each step's sailvl command in its own process (with --jobs 1; --jobs N always does). "
            "By default one seed at a time runs them in this process, without ~5 s of start-up per step.",
        ),
    ) -> None:
        from sailvl.cli.app import main
        from sailvl.experiment.base import SUMMARY
        from sailvl.experiment.registry import get_experiment
        from sailvl.experiment.run import run_experiment

        experiment = get_experiment(name)
        # Seeds side by side (--jobs N) need processes: each command gets its share of the CPU threads.
        invoke = None if subprocesses or jobs > 1 else main
        report = run_experiment(
            experiment, out, seeds=seeds, quick=quick, first_seed=first_seed, jobs=jobs, base=base,
            invoke=invoke,
        )  # fmt: skip
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


@experiment_app.command("assemble")
def assemble_command(
    llm_model: Path = typer.Argument(
        ..., help="A tiny model directory: everything but the vision tower comes from it."
    ),
    vit_model: Path = typer.Argument(
        ..., help="A tiny model directory with the same vision config: its vision tower."
    ),
    out: Path = typer.Argument(..., help="Where to write the assembled model (+ the LLM model's processor)."),
    projector: bool = typer.Option(
        False,
        "--projector",
        help="Take VIT_MODEL's projector too (the one its vision tower was trained with).",
    ),
) -> None:
    """Put one model's vision tower into another (an experiment arm's start: the base with another ViT)."""
    from sailvl.experiment.pretrained import assemble

    typer.echo(f"assembled model written to {assemble(llm_model, vit_model, out, projector)}")


@experiment_app.command("captions")
def captions_command(
    world: Path = typer.Argument(..., help="A synthetic world directory (sailvl synth --out)."),
    out: Path = typer.Argument(..., help="JSONL to write: the world's gold caption records."),
    shuffle_seed: int | None = typer.Option(
        None, "--shuffle-seed", help="Give every image another image's caption (a negative control)."
    ),
    short: bool = typer.Option(
        False,
        "--short",
        help="The alt-texts that are right about their image instead of the detailed captions.",
    ),
) -> None:
    """Write a world's gold caption records (the readout's alignment data): detailed, or short with --short."""
    from sailvl.experiment.pretrained import write_gold_captions

    out.parent.mkdir(parents=True, exist_ok=True)
    kind = "short" if short else "detailed"
    typer.echo(f"{kind} gold captions written to {write_gold_captions(world, out, shuffle_seed, short)}")


@experiment_app.command("same-images")
def same_images_command(
    source: Path = typer.Argument(
        ..., help="Records to select from (a JSONL file or a directory of shards)."
    ),
    reference: Path = typer.Argument(
        ..., help="Records whose images are kept (a JSONL file or a directory)."
    ),
    out: Path = typer.Argument(..., help="JSONL to write: SOURCE's records on REFERENCE's images."),
) -> None:
    """Write the records of SOURCE whose images REFERENCE has (recaption's size-matched arm: the raw alt-text of
    the images the curation kept)."""
    from sailvl.experiment.recaption import same_images

    out.parent.mkdir(parents=True, exist_ok=True)
    written, wanted = same_images(source, reference, out)
    typer.echo(f"{written} records on {wanted} reference images written to {out}")


@experiment_app.command("orders")
def orders_command(
    curriculum_dir: Path = typer.Argument(..., help="A curation curriculum directory (stage-K.jsonl files)."),
    out: Path = typer.Argument(..., help="Directory for curriculum.jsonl, mixed.jsonl, task-blocked.jsonl."),
    seed: int = typer.Option(0, "--seed", help="Seed of the shuffles."),
) -> None:
    """Write the curriculum experiment's SFT orders: the stages in order, all shuffled, grouped by task."""
    from sailvl.experiment.curriculum import write_orders

    counts = write_orders(curriculum_dir, out, seed)
    typer.echo(f"orders written to {out}: " + ", ".join(f"{arm} {n}" for arm, n in counts.items()))


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
    colour_steps: int | None = typer.Option(
        None, "--colour-steps", help="Optimizer steps of the text LLM's colour-drill stage (0: none)."
    ),
    lookup_steps: int | None = typer.Option(
        None, "--lookup-steps", help="Steps on drills of every task alone, after the colour stage (0: none)."
    ),
    text_steps: int | None = typer.Option(
        None, "--text-steps", help="Optimizer steps of the text LLM's corpus + drills stage."
    ),
    settle_steps: int | None = typer.Option(
        None, "--settle-steps", help="Optimizer steps of its last stage, the same records again (0: none)."
    ),
    vit_steps: int | None = typer.Option(
        None, "--vit-steps", help="Optimizer steps of the ViT's captioning run."
    ),
    weight_decay: float | None = typer.Option(
        None, "--weight-decay", help="Weight decay of the text LLM's corpus + drills stages."
    ),
    gate: str | None = typer.Option(
        None, "--gate", help='Least held-out text-QA accuracy per style, e.g. "short=0.8,mcq=0.5" ("": none).'
    ),
) -> None:
    """Build the pretrained tiny base of one seed: a text-pretrained LLM (colour drills, then the world's text with
    drills of every task; gated on held-out text QA) and a captioning-pretrained ViT, never aligned to each other;
    prints the model directory."""
    from dataclasses import replace

    from sailvl.experiment.pretrained import FULL, QUICK, build_base, parse_gate

    size = QUICK if quick else FULL
    changes = {"world_images": world_images, "colour_steps": colour_steps, "lookup_steps": lookup_steps,
               "text_steps": text_steps, "settle_steps": settle_steps, "vit_steps": vit_steps,
               "weight_decay": weight_decay}  # fmt: skip
    size = replace(size, **{k: v for k, v in changes.items() if v is not None})
    if gate is not None:
        size = replace(size, gate=parse_gate(gate))
    typer.echo(f"base model: {build_base(seed, out, size)}")
