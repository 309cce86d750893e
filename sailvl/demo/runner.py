"""Run demo steps as real `sailvl` CLI commands in subprocesses, with logs, timings and a progress display."""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sailvl.errors import SailvlError


@dataclass
class Command:
    """One CLI invocation of a demo step: `sailvl <args>`, logged to `log_name`."""

    title: str
    args: list[str]
    log_name: str
    env: dict[str, str] = field(default_factory=dict)

    def shell(self) -> str:
        """The command line a user can paste to rerun this step."""
        prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        line = "sailvl " + " ".join(shlex.quote(a) for a in self.args)
        return f"{prefix} {line}".strip()


@dataclass
class CommandResult:
    """What running a Command did: wall seconds and the path of its log."""

    command: Command
    seconds: float
    log: Path


class StepRunner:
    """Runs Commands one after another; a failing command stops the demo with the tail of its log."""

    def __init__(
        self,
        out_dir: Path,
        console,
        invoke: Callable[[list[str]], None] | None = None,
        env: dict[str, str] | None = None,
        live: bool = True,
    ):
        """`invoke`: run commands in this process with this CLI entry (`sailvl.cli.main`) instead of a
        subprocess; tests use it to skip the interpreter start-up per command. Real runs leave it None.
        `env`: variables set for every command (e.g. `OMP_NUM_THREADS` when runners share the cores). `live`:
        a spinner while a command runs; runners in parallel threads print a start line instead (one live
        display at a time)."""
        self.invoke, self.env, self.live = invoke, dict(env or {}), live
        self.out_dir = out_dir
        self.log_dir = out_dir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.console = console
        self.results: list[CommandResult] = []

    def run(self, command: Command, stdout_file: Path | None = None) -> CommandResult:
        """Run `python -m sailvl.cli <args>` showing a status line; output goes to the log. With `stdout_file`,
        stdout alone goes there and stderr (progress bars, loading messages) stays in the log, so a quoted
        chat answer is only what the command printed."""
        log = self.log_dir / f"{command.log_name}.log"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **self.env, **command.env}
        start = time.perf_counter()
        if not self.live:
            self.console.print(f"start {command.title} [dim](log {log})[/]")
        status = self.console.status(f"[bold]{command.title}[/] ...", spinner="dots") if self.live else None
        with status or contextlib.nullcontext():
            with open(log, "w", encoding="utf-8") as handle:
                handle.write(f"$ {command.shell()}\n")
                handle.flush()
                out = open(stdout_file, "w", encoding="utf-8") if stdout_file else handle
                if self.invoke is not None:
                    returncode = _invoke(self.invoke, command.args, out, handle)
                else:
                    returncode = subprocess.run(
                        [sys.executable, "-m", "sailvl.cli", *command.args],
                        stdout=out,
                        stderr=handle if stdout_file else subprocess.STDOUT,
                        env=env,
                        stdin=subprocess.DEVNULL,
                    ).returncode
                if stdout_file:
                    out.close()
        seconds = time.perf_counter() - start
        if returncode != 0:
            tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:])
            raise SailvlError(f"demo step '{command.title}' failed (exit {returncode}); see {log}:\n{tail}")
        self.console.print(f"[green]done[/] {command.title} [dim]({seconds:.0f} s, log {log})[/]")
        result = CommandResult(command, seconds, log)
        self.results.append(result)
        return result

    def output(self, command: Command) -> str:
        """Run a command and return its standard output (e.g. a chat answer)."""
        path = self.log_dir / f"{command.log_name}.stdout"
        self.run(command, stdout_file=path)
        return path.read_text(encoding="utf-8", errors="replace")


def _invoke(entry: Callable[[list[str]], None], args: list[str], out, err) -> int:
    """Exit status of `entry(args)` with stdout to `out` and stderr to `err`."""
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            entry(list(args))
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else 1
    return 0
