"""`sailvl demo`: the whole SAIL-VL loop on the synthetic world, each step a real `sailvl` command on files."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from sailvl.demo.runner import Command, StepRunner

PIPELINES = Path(__file__).resolve().parent.parent / "config" / "pipelines"
BENCHES = ("synth_mcq", "synth_vqa", "synth_yesno", "synth_ocr")


@dataclass(frozen=True)
class DemoSize:
    """Budgets of one demo size. Steps are optimizer steps; images are 112 px synthetic scenes."""

    world_images: int
    bench_items: int
    captioner_steps: int
    judge_steps: int
    recaption_pool: int  # alt-text records sent to the captioner
    sailvit_steps: tuple[int, int, int]  # stages I, II, III
    eval_limit: int | None  # rows per benchmark (None: all)
    chat_images: int


FULL = DemoSize(2000, 120, 500, 500, 240, (60, 100, 900), None, 4)
QUICK = DemoSize(600, 40, 150, 150, 48, (20, 30, 300), None, 2)


@dataclass
class DemoPaths:
    """Where every artefact of a demo run lives under OUT."""

    out: Path

    def __post_init__(self):
        o = self.out
        self.world, self.tiny = o / "world", o / "tiny-model"
        self.captions_split, self.judge_split = o / "curate" / "caption-split", o / "curate" / "judge-split"
        self.captioner, self.judge = o / "train" / "captioner", o / "train" / "judge"
        self.recaption, self.sft = o / "curate" / "recaption", o / "curate" / "sft-curriculum"
        self.judge_eval = o / "curate" / "judge-eval"
        self.sailvit, self.eval, self.report = o / "train" / "sailvit", o / "eval", o / "report"


SAILVIT_STAGES = ("warmup-adaptation", "fine-grained-alignment", "world-knowledge")


def export_dir(run: Path, stage: str) -> Path:
    """The HF export the trainer writes at the end of `stage`."""
    return run / stage / "export"


def build_commands(paths: DemoPaths, size: DemoSize, seed: int) -> dict[str, Command]:
    """Every demo step as a `sailvl` command line, in run order."""
    p, s = paths, size
    world, tiny = str(p.world), str(p.tiny)
    kept = lambda run: str(run / "kept")  # noqa: E731
    cmds = {
        "synth": Command(
            "1. generate the synthetic world",
            [
                "synth",
                "--out",
                world,
                "--n",
                str(s.world_images),
                "--seed",
                str(seed),
                "--n-bench",
                str(s.bench_items),
                "--max-objects",
                "2",
                "--object-scale",
                "1.6",
                "--tiny-model",
                tiny,
            ],
            "01-synth",
        ),  # fmt: skip
        "caption_split": Command(
            "2a. split captions into the gold set and the alt-text pool",
            [
                "curate",
                str(PIPELINES / "synth_caption_split.yaml"),
                f"input.paths=[{world}/pretrain.jsonl]",
                f"output_dir={p.captions_split}",
            ],
            "02a-caption-split",
        ),  # fmt: skip
        "captioner": Command(
            "2b. train the tiny captioner on gold detailed captions",
            [
                "train",
                "tiny-captioner",
                f"vars.world={world}",
                f"vars.model_dir={tiny}",
                f"vars.data={p.captions_split}/gold",
                f"stages.0.budget.steps={s.captioner_steps}",
                "--out",
                str(p.captioner),
            ],
            "02b-train-captioner",
        ),  # fmt: skip
        "judge": Command(
            "2c. train the tiny judge on judge.jsonl",
            [
                "train",
                "tiny-judge",
                f"vars.world={world}",
                f"vars.model_dir={tiny}",
                f"vars.init={export_dir(p.captioner, 'captioner')}",
                f"stages.0.budget.steps={s.judge_steps}",
                "--out",
                str(p.judge),
            ],
            "02c-train-judge",
        ),  # fmt: skip
        "recaption": Command(
            "2d. recaption the alt-text pool, check, dedup and judge the new captions",
            [
                "curate",
                str(PIPELINES / "synth_recaption_judge.yaml"),
                f"input.paths=[{p.captions_split}/alt]",
                f"input.limit={s.recaption_pool}",
                f"steps.2.model={export_dir(p.captioner, 'captioner')}",
                f"steps.5.model={export_dir(p.judge, 'judge')}",
                f"output_dir={p.recaption}",
            ],
            "02d-recaption-judge",
        ),  # fmt: skip
        "recaption_report": Command(
            "2e. curation funnel and histograms", ["curate", "report", str(p.recaption)], "02e-curate-report"
        ),
        "sft": Command(
            "2f. score SFT data and split it into a 3-stage curriculum",
            [
                "curate",
                str(PIPELINES / "synth_sft_curriculum.yaml"),
                f"input.paths=[{world}/sft.jsonl]",
                f"output_dir={p.sft}",
            ],
            "02f-sft-curriculum",
        ),  # fmt: skip
        "sailvit": Command(
            "3. train tiny SAILViT (stages I, II, III) on the curated data",
            [
                "train",
                "tiny-sailvit",
                f"vars.world={world}",
                f"vars.model_dir={tiny}",
                f"vars.captions={kept(p.recaption)}",
                f"vars.gold={p.captions_split}/gold",
                f"vars.sft={p.sft}/curriculum",
                *[f"stages.{i}.budget.steps={n}" for i, n in enumerate(s.sailvit_steps)],
                "--out",
                str(p.sailvit),
            ],
            "03-train-sailvit",
        ),  # fmt: skip
    }
    benches = [a for b in BENCHES for a in ("--bench", f"{world}/bench/{b}.tsv")]
    limit = ["--limit", str(s.eval_limit)] if s.eval_limit else []
    for stage in ("untrained", *SAILVIT_STAGES):
        model = tiny if stage == "untrained" else str(export_dir(p.sailvit, stage))
        cmds[f"eval:{stage}"] = Command(
            f"4. evaluate {stage}", ["eval", "--model", model, *benches, *limit, "--out", str(p.eval / stage)],
            f"04-eval-{stage}",
        )  # fmt: skip
    cmds["scaling"] = Command(
        "4b. fit score vs log(tokens) over the stage checkpoints",
        ["scaling", "fit", *[str(p.eval / st / "results.json") for st in SAILVIT_STAGES], "--x", "tokens",
         "--out", str(p.report / "scaling_fit.png")],
        "04b-scaling-fit",
    )  # fmt: skip
    return cmds


def run_demo(out: str | Path, quick: bool = False, seed: int = 0) -> Path:
    """Run every step, then write OUT/report/report.md and report.html; returns the Markdown path."""
    from rich.console import Console

    from sailvl.demo.report import write_report

    console = Console()
    paths, size = DemoPaths(Path(out).resolve()), QUICK if quick else FULL
    paths.report.mkdir(parents=True, exist_ok=True)
    runner = StepRunner(paths.out, console)
    commands = build_commands(paths, size, seed)
    start = time.perf_counter()
    for key, command in commands.items():
        if key != "scaling":
            runner.run(command)
    runner.run(commands["scaling"])
    chats = _chat(runner, paths, size)
    report = write_report(paths, runner.results, chats, time.perf_counter() - start, size, seed)
    (paths.report / "demo.json").write_text(json.dumps({"size": asdict(size), "seed": seed}, indent=1))
    return report


def _chat(runner: StepRunner, paths: DemoPaths, size: DemoSize) -> list[dict]:
    """Ask the final model about a few held-out benchmark images with `sailvl chat`."""
    from sailvl.demo.report import held_out_examples

    final = export_dir(paths.sailvit, SAILVIT_STAGES[-1])
    answers = []
    for i, ex in enumerate(
        held_out_examples(paths.world / "bench" / "synth_vqa.tsv", paths.report, size.chat_images)
    ):
        command = Command(
            f"5. chat with the final model ({i + 1}/{size.chat_images})",
            ["chat", "--model", str(final), "--image", ex["image"], "--max-new-tokens", "16", ex["question"]],
            f"05-chat-{i}",
        )
        answers.append({**ex, "answer": runner.output(command).strip(), "command": command.shell()})
    return answers
