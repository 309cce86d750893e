"""Run demo steps as real `sailvl` CLI commands, in subprocesses or in this process, with logs, timings and a
progress display."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import subprocess
import sys
import time
import traceback
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
        subprocess, which skips the ~5 s of interpreter and torch/transformers start-up per command (the demo and
        tests do; the experiments' parallel seed runners leave it None). `env` and a command's own `env` apply to
        subprocesses only.
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
    """Exit status of `entry(args)` with stdout to `out` and stderr to `err`, as a subprocess would give it: an
    uncaught exception is written to `err` with its traceback and returns 1, and what the command logs to the console
    through `logging` (transformers' warnings included) goes to `err` too."""
    with _console_logs_to(err), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            entry(list(args))
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        except Exception:  # noqa: BLE001 - a failing step is reported like a failing subprocess
            traceback.print_exc(file=err)
            return 1
    return 0


def _console_handlers(streams: tuple) -> list[logging.StreamHandler]:
    """The stream handlers, of the root logger and of every named logger, that write to one of `streams` and hold
    it (not those, like logging's last resort, whose stream is a property that reads `sys.stderr` when they write)."""
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    return [
        h
        for lg in loggers
        if isinstance(lg, logging.Logger)
        for h in lg.handlers
        if isinstance(h, logging.StreamHandler)
        and not isinstance(getattr(type(h), "stream", None), property)
        and any(h.stream is s for s in streams)
    ]


@contextlib.contextmanager
def _console_logs_to(err):
    """Point the log handlers that write to the console's stderr at `err` for the duration. A handler keeps the
    stream it was made with, so one that a library sets up during a command (while stderr is that command's log)
    is pointed back at the console's stderr afterwards, never left on a closed log. Other handlers (files, a test
    runner's capture) are left alone."""
    console = sys.stderr
    moved = _console_handlers((console, sys.__stderr__))
    previous = [h.stream for h in moved]
    for handler in moved:
        _set_stream(handler, err)
    try:
        yield
    finally:
        for handler, stream in zip(moved, previous, strict=True):
            _set_stream(handler, stream)
        for handler in _console_handlers((err,)):
            _set_stream(handler, console)


def _set_stream(handler: logging.StreamHandler, stream) -> None:
    """`handler.setStream(stream)`, first dropping a `flush` set on the instance: transformers binds its handler's
    flush to the `sys.stderr` of the moment it sets up its logging (here: one step's log, closed after that step),
    where StreamHandler's own flush flushes whatever stream the handler holds."""
    if "flush" in vars(handler):
        del handler.flush
    handler.setStream(stream)
