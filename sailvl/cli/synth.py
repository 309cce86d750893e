"""`sailvl synth`: generate the synthetic visual world (and optionally a tiny model directory for it)."""

from __future__ import annotations

from pathlib import Path

import typer

from sailvl.cli.app import app


@app.command("synth")
def synth(
    out: Path = typer.Option(
        ..., "--out", help="Output directory (empty, new, or an earlier world to overwrite)."
    ),
    n: int = typer.Option(2000, "--n", help="Number of training images."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives byte-identical files."),
    size: int = typer.Option(112, "--size", help="Image side in pixels (112, 224, 448, ...)."),
    tasks: str = typer.Option(
        None,
        "--tasks",
        help="Comma-separated subset of colour,shape,count,position,digit,ocr,chart,caption (default: all).",
    ),
    n_bench: int = typer.Option(None, "--n-bench", help="Items per benchmark TSV (default n/5, 40..500)."),
    max_objects: int = typer.Option(5, "--max-objects", help="Most shapes per shapes scene (1-5)."),
    object_scale: float = typer.Option(
        1.0, "--object-scale", help="Shape size multiplier (1-2); 2 with --max-objects 1 is an easy world."
    ),
    kind_weights: str = typer.Option(
        None,
        "--kind-weights",
        help="How often each scene kind is drawn, e.g. digits=4 (default shapes=4,digits=1.5,text=1.5,chart=1).",
    ),
    digit_jitter: float = typer.Option(
        1.0, "--digit-jitter", help="Random offset and size spread of handwritten digits (0-1; 0: fixed)."
    ),
    style_weights: str = typer.Option(
        None,
        "--style-weights",
        help="Answer styles of the SFT task questions, e.g. mcq=0.1 (default short=0.55,mcq=0.3,open=0.15).",
    ),
    yesno_prob: float = typer.Option(
        0.3, "--yesno-prob", help="Share of images that get a yes/no SFT question (0-1)."
    ),
    yesno_pairs: bool = typer.Option(
        False,
        "--yesno-pairs",
        help="Ask each yes/no question twice on its image, once true and once false (a contrastive pair).",
    ),
    mcq_answer: str = typer.Option(
        "letter",
        "--mcq-answer",
        help="How SFT MCQ answers are written: letter (VLMEvalKit's instruction) or text-letter (the option's "
        "text, then its letter: 'square D', which a tiny model learns; benchmarks are letter-scored either way).",
    ),
    yesno_answer: str = typer.Option(
        "word",
        "--yesno-answer",
        help="How SFT yes/no answers are written: word, or seen-word (what the image shows of the asked "
        "attribute, then the word: 'pink square No'; benchmarks read the word either way).",
    ),
    think: int = typer.Option(
        0,
        "--think",
        help="Also write think.jsonl: this many two-digit images whose answer adds the digits after a "
        "<think> trace that reads each one, and the held-out bench/synth_think.tsv.",
    ),
    tiny_model: Path = typer.Option(
        None,
        "--tiny-model",
        help="Also write a loadable `tiny` model directory here: a BPE tokenizer trained on the world's text, "
        "a random-init tiny InternVL and the processor settings.",
    ),
) -> None:
    """Write images/, pretrain.jsonl, sft.jsonl, judge.jsonl, bench/*.tsv and README.md to --out."""
    from sailvl.synth import generate_world

    summary = generate_world(
        out,
        n=n,
        seed=seed,
        size=size,
        tasks=tasks,
        n_bench=n_bench,
        max_objects=max_objects,
        object_scale=object_scale,
        kind_weights=kind_weights,
        digit_jitter=digit_jitter,
        style_weights=style_weights,
        yesno_prob=yesno_prob,
        yesno_pairs=yesno_pairs,
        think=think,
        mcq_answer=mcq_answer,
        yesno_answer=yesno_answer,
    )
    typer.echo(
        f"wrote {summary['images']} images, {summary['pretrain']} captions, {summary['sft']} SFT samples, "
        f"{summary['judge']} judge pairs, {summary['think']} think samples and {len(summary['bench'])} benchmarks "
        f"to {out}"
    )
    if tiny_model is not None:
        from sailvl.synth.tiny_model import make_tiny_model_dir

        make_tiny_model_dir(out, tiny_model, seed=seed)
        typer.echo(f"wrote a tiny model directory to {tiny_model}")
