"""The typer application objects every command module registers on, and the error-handling entry."""

from __future__ import annotations

import sys

import click
import typer

from sailvl.errors import SailvlError

app = typer.Typer(
    name="sailvl",
    help="Curate data, train and evaluate SAIL-VL style vision-language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
bench_app = typer.Typer(help="Measure throughput against a baseline run in the same process (prints JSON).")
app.add_typer(bench_app, name="bench")
model_app = typer.Typer(help="Inspect models.")
app.add_typer(model_app, name="model")
data_app = typer.Typer(help="Data tools: SFT data-selection protocols.")
app.add_typer(data_app, name="data")
scaling_app = typer.Typer(help="Fit score vs log(training budget) over a series of checkpoints.")
app.add_typer(scaling_app, name="scaling")


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user errors print one line (`error: ...`) and exit 2, with a traceback only under --debug."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    from sailvl.cli import register_commands

    register_commands()
    command = typer.main.get_command(app)
    try:
        command.main(args=args, prog_name="sailvl", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except SailvlError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
