"""Dynamic batching for `sailvl serve`: requests that arrive within a short window share one left-padded
`generate` call, run by one worker thread that owns the model."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from sailvl.errors import SailvlError
from sailvl.infer.generate import generation_kwargs, model_inputs, new_tokens
from sailvl.infer.request import GenRequest

# How often an idle worker looks at the stop flag (seconds).
_IDLE_POLL_S = 0.1


class ShuttingDown(SailvlError):
    """The server is stopping: the request was not (or not completely) answered."""


@dataclass(frozen=True)
class Decoding:
    """One request's decoding: `max_new_tokens` (tokens), `temperature` (0: greedy), `seed` (sampling only)."""

    max_new_tokens: int
    temperature: float = 0.0
    seed: int | None = None

    def group_key(self) -> Hashable | None:
        """Requests with equal keys share a `generate` call; None: served alone.

        Greedy rows do not interact, so any greedy requests batch. Unseeded sampled requests batch by
        temperature. A seeded sampled request runs alone after `torch.manual_seed(seed)`, the only way its
        answer is reproducible whatever else is in flight. Budgets are grouped by power of two so a short
        request does not wait on a long one's tokens; each row still stops at its own budget."""
        bucket = self.max_new_tokens.bit_length()
        if self.temperature == 0:
            return ("greedy", bucket)
        if self.seed is not None:
            return None
        return ("sample", self.temperature, bucket)


@dataclass
class Completion:
    """A finished answer: generated `ids` (stop token dropped), `prompt_tokens` (the encoded prompt, images
    expanded), `completion_tokens` (generated, the closing stop token included) and OpenAI's `finish_reason`."""

    ids: list[int]
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


@dataclass
class Job:
    """A request waiting for the worker; `streamer` (transformers streamer) makes it a streamed, unbatched one.
    `cancelled` (set by a departed client) ends its row at the next token."""

    request: GenRequest
    decoding: Decoding
    streamer: Any = None
    future: Future = field(default_factory=Future)
    cancelled: bool = False


class RowBudgets(StoppingCriteria):
    """Per-row stopping: a row ends at its own token budget or when its client left; every row ends when the
    server stops (so a shutdown never waits on a long generation)."""

    def __init__(self, prompt_width: int, jobs: list[Job], stopping: threading.Event):
        self.prompt_width, self.jobs, self.stopping = prompt_width, jobs, stopping
        self.budgets = torch.tensor([job.decoding.max_new_tokens for job in jobs])

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        if self.stopping.is_set():
            return torch.ones(len(self.jobs), dtype=torch.bool, device=input_ids.device)
        done = self.budgets <= input_ids.shape[1] - self.prompt_width
        done |= torch.tensor([job.cancelled for job in self.jobs])
        return done.to(input_ids.device)


class Batcher:
    """Collects jobs for `window_s` seconds after the first (or until `max_batch`), groups compatible ones
    (`Decoding.group_key`) and answers each group with one `generate` call. `stats` counts requests answered,
    `generate` calls made, the largest batch, failed requests, and the rows `generating` now."""

    def __init__(self, model, processor, max_batch: int, window_s: float, max_tiles: int | None, msac: bool):
        if max_batch < 1:
            raise SailvlError(f"max_batch must be at least 1, got {max_batch}")
        if window_s < 0:
            raise SailvlError(f"the batching window must be >= 0 seconds, got {window_s}")
        self.model, self.processor = model, processor
        self.max_batch, self.window_s, self.max_tiles, self.msac = max_batch, window_s, max_tiles, msac
        self.stats = {"requests": 0, "generate_calls": 0, "largest_batch": 0, "failed": 0, "generating": 0}
        self._queue: queue.Queue[Job] = queue.Queue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sailvl-generate", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> Future:
        """Queue `job`; its future resolves to a `Completion` or raises (`ShuttingDown`, `SailvlError`)."""
        if self._stopping.is_set():
            raise ShuttingDown("the server is shutting down")
        self._queue.put(job)
        return job.future

    def stop(self, join_s: float = 0.0) -> None:
        """Refuse new jobs, end the running generation at its next token, fail every queued job."""
        self._stopping.set()
        self._thread.join(timeout=join_s)
        while True:
            try:
                self._fail([self._queue.get_nowait()], ShuttingDown("the server is shutting down"))
            except queue.Empty:
                return

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                first = self._queue.get(timeout=_IDLE_POLL_S)
            except queue.Empty:
                continue
            for group in self._groups(self._collect(first)):
                if self._stopping.is_set():
                    self._fail(group, ShuttingDown("the server is shutting down"))
                else:
                    self._serve(group)

    def _collect(self, first: Job) -> list[Job]:
        """`first` and whatever arrives within the window after it, up to `max_batch` jobs."""
        jobs, deadline = [first], time.monotonic() + self.window_s
        while len(jobs) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:  # past the window, still take what is already queued (a busy server batches by itself)
                jobs.append(self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait())
            except queue.Empty:
                break
        return jobs

    @staticmethod
    def _groups(jobs: list[Job]) -> list[list[Job]]:
        """Jobs split into compatible groups, in order of each group's first arrival."""
        groups: dict[Hashable, list[Job]] = {}
        for index, job in enumerate(jobs):
            key = job.decoding.group_key()
            key = ("alone", index) if key is None or job.streamer is not None else key
            groups.setdefault(key, []).append(job)
        return list(groups.values())

    def _serve(self, jobs: list[Job]) -> None:
        jobs = [job for job in jobs if not job.cancelled]
        if not jobs:
            return
        try:
            completions = self._generate(jobs)
        except Exception as err:  # handed to each waiting request; the worker keeps serving
            self._fail(jobs, err)
            return
        self.stats["requests"] += len(jobs)
        for job, completion in zip(jobs, completions, strict=True):
            job.future.set_result(completion)

    def _generate(self, jobs: list[Job]) -> list[Completion]:
        decoding = jobs[0].decoding  # the group shares temperature and seed
        inputs = model_inputs(
            self.model, self.processor, [j.request for j in jobs], self.max_tiles, self.msac
        )
        budget = max(job.decoding.max_new_tokens for job in jobs)
        sampled = decoding.temperature > 0
        kwargs = generation_kwargs(self.processor.tokenizer, budget, sampled, decoding.temperature or 1.0)
        if sampled and decoding.seed is not None:
            torch.manual_seed(decoding.seed)
        width = inputs["input_ids"].shape[1]
        stopping = StoppingCriteriaList([RowBudgets(width, jobs, self._stopping)])
        self.stats["generate_calls"] += 1
        self.stats["largest_batch"] = max(self.stats["largest_batch"], len(jobs))
        self.stats["generating"] = len(jobs)
        try:
            with torch.no_grad():
                output = self.model.generate(
                    **inputs, **kwargs, stopping_criteria=stopping, streamer=jobs[0].streamer
                )
        finally:
            self.stats["generating"] = 0
        if self._stopping.is_set():
            raise ShuttingDown("the server is shutting down; the answer was cut short")
        prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()
        out = []
        for job, ids, prompt in zip(jobs, new_tokens(output, width, kwargs), prompt_tokens, strict=True):
            length = len(ids) >= job.decoding.max_new_tokens
            out.append(
                Completion(ids, int(prompt), len(ids) + (0 if length else 1), "length" if length else "stop")
            )
        return out

    def _fail(self, jobs: list[Job], err: BaseException) -> None:
        self.stats["failed"] += len(jobs)
        for job in jobs:
            if not job.future.done():
                job.future.set_exception(err)
            if job.streamer is not None:
                job.streamer.end()  # the streamed response waits for its end mark
