"""The resumable training loader: per-worker sample streams, packing, batches, and the state the trainer saves."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import torch

from sailvl.config.constants import IMAGE_PLACEHOLDER, IMG_END, IMG_START
from sailvl.data import bad_records as reasons
from sailvl.data.bad_records import BadRecordCounter
from sailvl.data.collate import collate_packs, collate_padded
from sailvl.data.config import DataConfig
from sailvl.data.data_fingerprint import data_changes, data_fingerprint
from sailvl.data.images import BadRecord, load_image
from sailvl.data.mixture import MixtureSampler, ShardStream, mixture_weights
from sailvl.data.packing import BestFitPacker, PackItem, fit_to_length
from sailvl.data.preference import last_answer_labels, pair_item, rejected_conversation
from sailvl.data.readers import UnreadableRecord, decode_raw
from sailvl.data.sample import Sample
from sailvl.errors import SailvlError

logger = logging.getLogger(__name__)
# 2: the state carries the data fingerprint. A version-1 state (no fingerprint) still resumes, with a warning.
STATE_VERSION = 2
READABLE_VERSIONS = (1, 2)


class FifoBatcher:
    """Groups items in arrival order into lists of `batch_size` (the unpacked, pad-to-longest path)."""

    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self._items: list[PackItem] = []

    def pending(self) -> list[PackItem]:
        """Buffered items in stream order."""
        return list(self._items)

    def add(self, item: PackItem) -> list[list[PackItem]]:
        """Buffer one item; returns a full group when there is one."""
        self._items.append(item)
        if len(self._items) < self.batch_size:
            return []
        group, self._items = self._items, []
        return [group]


def check_sample(sample: Sample) -> None:
    """Cheap checks before decoding images: an empty answer or a placeholder count that differs from the images."""
    answers = [t["content"] for t in sample.conversation if t.get("role") == "assistant"]
    if not answers or any(not str(a).strip() for a in answers):
        raise BadRecord(reasons.EMPTY_ANSWER, f"sample {sample.id} has an empty or missing answer")
    placeholders = sum(str(t.get("content", "")).count(IMAGE_PLACEHOLDER) for t in sample.conversation)
    if placeholders and placeholders != len(sample.images):
        raise BadRecord(
            reasons.IMAGE_COUNT_MISMATCH,
            f"sample {sample.id} has {placeholders} {IMAGE_PLACEHOLDER} placeholders but {len(sample.images)} images",
        )


class SampleStream:
    """One worker's stream: draws records from the mixture, skips bad ones, encodes, packs, collates.

    Iterating yields `(batch, state)`; `state` restores the stream so that it yields the following batches.
    """

    def __init__(
        self,
        config: DataConfig,
        processor,
        weights: list[float],
        seed: int,
        rank: int,
        world_size: int,
        worker: int,
        num_workers: int,
        state: dict | None = None,
    ):
        self.config, self.processor = config, processor
        self.sampler = MixtureSampler(weights, seed, rank, worker)
        shard, num_shards = rank * num_workers + worker, world_size * num_workers
        positions = (state or {}).get("sources") or [{"epoch": 0, "position": 0}] * len(config.sources)
        self.streams = [
            ShardStream(src, i, shard, num_shards, seed, config.shuffle_block, pos["epoch"], pos["position"])
            for i, (src, pos) in enumerate(zip(config.sources, positions, strict=True))
        ]
        self.bad = BadRecordCounter(config.max_bad_fraction, config.min_records_before_abort)
        self.step = 0
        self.provenance: dict[int, tuple[int, int, int]] = {}  # draw -> (source, epoch, position)
        self.packs: list[list[PackItem]] = []
        if config.packing:
            self.grouper = BestFitPacker(config.max_tokens, config.max_tiles_per_pack, config.pack_buffer)
        else:
            self.grouper = FifoBatcher(config.batch_size)
        tokenizer = processor.tokenizer
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.img_start_id = tokenizer.convert_tokens_to_ids(IMG_START)
        self.img_end_id = tokenizer.convert_tokens_to_ids(IMG_END)
        if state is not None:
            self._restore(state)

    # -- one record -> one PackItem ------------------------------------------------------------------
    def _encode(self, source_index: int, raw: Any, draw: int) -> PackItem:
        source = self.config.sources[source_index]
        name = source.display_name
        try:
            sample = decode_raw(source.format, raw, name, source.image_root)
        except UnreadableRecord as exc:
            raise BadRecord(exc.reason, f"{name}/{exc.record_id}: {exc.detail}") from None
        sample.id = f"{name}/{sample.id}"
        check_sample(sample)
        rejected = rejected_conversation(sample) if self.config.preference_pairs else None
        max_tiles = source.max_tiles or self.processor.max_tiles
        images = [load_image(ref, max_side=self.processor.tile_size * max_tiles) for ref in sample.images]
        encoded = self.processor.encode_sample(
            sample.conversation, images, max_tiles=source.max_tiles, uint8=self.config.uint8_pixels
        )
        if rejected is None:
            return self._fit(sample.id, encoded, draw, self.config.long_samples == "truncate")
        # The rejected answer reuses the chosen one's tiles (a tensor image is taken as its tiles).
        tiles = list(torch.split(encoded.pixel_values, encoded.num_tiles)) if encoded.num_tiles else []
        other = self.processor.encode_sample(rejected, tiles, source.max_tiles, self.config.uint8_pixels)
        pair = [self._fit(sample.id, e, draw, False) for e in (encoded, other)]
        for item in pair:
            item.labels = last_answer_labels(item.labels)
        item = pair_item(*pair)
        if item.length > self.config.max_tokens:  # a pair is never cut: both answers must stay whole
            raise BadRecord(reasons.TOO_LONG, f"{sample.id}: the pair has {item.length} tokens")
        self._check_tiles(sample.id, item.num_tiles)
        return item

    def _fit(self, sample_id: str, encoded, draw: int, truncate: bool) -> PackItem:
        input_ids, labels, pixels = encoded.input_ids, encoded.labels, encoded.pixel_values
        tiles = int(sum(encoded.num_tiles))
        if input_ids.numel() > self.config.max_tokens:
            fitted = None
            if truncate:
                fitted = fit_to_length(
                    input_ids, labels, pixels, encoded.num_tiles, self.config.max_tokens,
                    self.img_start_id, self.img_end_id,
                )  # fmt: skip
            if fitted is None:
                raise BadRecord(reasons.TOO_LONG, f"{sample_id} has {input_ids.numel()} tokens")
            input_ids, labels, pixels, tiles = fitted
        self._check_tiles(sample_id, tiles)
        return PackItem(draw, sample_id, input_ids, labels, pixels, tiles)

    def _check_tiles(self, sample_id: str, tiles: int) -> None:
        if self.config.packing and tiles > self.config.max_tiles_per_pack:
            raise BadRecord(reasons.TOO_MANY_TILES, f"{sample_id} has {tiles} tiles")

    def _next_item(self) -> PackItem:
        while True:
            source_index = self.sampler.choose(self.step)
            epoch, position, raw = self.streams[source_index].next_raw()
            draw, self.step = self.step, self.step + 1
            try:
                item = self._encode(source_index, raw, draw)
            except BadRecord as exc:
                self.bad.skip(exc.reason, self._record_name(source_index, raw, draw), str(exc))
                self.bad.check()
                continue
            self.bad.ok()
            self.provenance[draw] = (source_index, epoch, position)
            return item

    def _record_name(self, source_index: int, raw: Any, draw: int) -> str:
        source = self.config.sources[source_index]
        if source.format == "jsonl":
            return f"{source.display_name}/{raw[0]}:{raw[1]}"
        if isinstance(raw, dict) and ("id" in raw or "__key__" in raw):
            return f"{source.display_name}/{raw.get('id', raw.get('__key__'))}"
        return f"{source.display_name}/draw{draw}"

    # -- batches ---------------------------------------------------------------------------------------
    def _collate(self, groups: list[list[PackItem]]) -> dict:
        if self.config.packing:
            return collate_packs(groups, self.config.max_tokens, self.pad_id, self.config.attention_mask)
        return collate_padded(groups[0], self.pad_id)

    def __iter__(self) -> Iterator[tuple[dict, dict]]:
        per_batch = self.config.packs_per_batch if self.config.packing else 1
        while True:
            for group in self.grouper.add(self._next_item()):
                self.packs.append(group)
                if len(self.packs) == per_batch:
                    batch = self._collate(self.packs)
                    for item in (it for pack in self.packs for it in pack):
                        del self.provenance[item.draw]
                    self.packs = []
                    yield batch, self.state()

    # -- state -----------------------------------------------------------------------------------------
    def state(self) -> dict:
        """Plain-python state: draw step, source positions, buffered samples by provenance, bad-record counts."""

        def prov(items: list[PackItem]) -> list[list[int]]:
            return [[it.draw, *self.provenance[it.draw]] for it in items]

        return {
            "step": self.step,
            "sources": [s.state() for s in self.streams],
            "buffer": prov(self.grouper.pending()),
            "packs": [prov(pack) for pack in self.packs],
            "bad": self.bad.state_dict(),
        }

    def _restore(self, state: dict) -> None:
        self.step = state["step"]
        self.bad.load_state_dict(state["bad"])
        rows = state["buffer"] + [row for pack in state["packs"] for row in pack]
        by_epoch: dict[tuple[int, int], list[int]] = {}
        for _, source_index, epoch, position in rows:
            by_epoch.setdefault((source_index, epoch), []).append(position)
        raws = {key: self.streams[key[0]].raws_at(key[1], pos) for key, pos in by_epoch.items()}
        items = {}
        for draw, source_index, epoch, position in rows:
            # These records encoded fine before the checkpoint; encoding is deterministic.
            items[draw] = self._encode(source_index, raws[(source_index, epoch)][position], draw)
            self.provenance[draw] = (source_index, epoch, position)
        self.packs = [[items[row[0]] for row in pack] for pack in state["packs"]]
        for row in state["buffer"]:
            assert not self.grouper.add(items[row[0]]), "restored buffer must not emit"


class _WorkerDataset(torch.utils.data.IterableDataset):
    """Runs one SampleStream per DataLoader worker; worker j plays logical worker (j + offset) % num_workers."""

    def __init__(self, loader: SailLoader, offset: int):
        self.loader, self.offset = loader, offset

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        num = max(self.loader.config.num_workers, 1)
        worker = ((info.id if info is not None else 0) + self.offset) % num
        stream = self.loader.make_stream(worker, self.loader.worker_states.get(worker))
        for batch, state in stream:
            batch["_worker"], batch["_state"] = worker, state
            yield batch


def _identity(x):
    return x


class SailLoader:
    """Endless iterator of batches (docs/ARCHITECTURE.md) for one rank; `state_dict()` gives exact resume.

    Batches come round-robin from `num_workers` worker streams; the state holds each worker's stream state
    and how many batches were consumed, so a restored loader continues with the very next batch.
    """

    def __init__(
        self,
        config: DataConfig,
        processor,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        ignore_data_change: bool = False,
    ):
        if not 0 <= rank < world_size:
            raise SailvlError(f"rank {rank} is outside world size {world_size}")
        self.config, self.processor = config, processor
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.ignore_data_change = ignore_data_change
        self.weights = mixture_weights(config.sources)
        self.consumed = 0
        self.worker_states: dict[int, dict] = {}
        self._fingerprint: dict | None = None

    def data_fingerprint(self) -> dict:
        """Sources (files, sizes, record counts), mixture weights, packing layout and tokenizer; computed once
        (a pass over the JSONL sources to count records), when the first state is saved or restored."""
        if self._fingerprint is None:
            self._fingerprint = data_fingerprint(self.config, self.processor.tokenizer, self.weights)
        return self._fingerprint

    def make_stream(self, worker: int, state: dict | None = None) -> SampleStream:
        """The SampleStream of logical worker `worker` (restored from `state` when given)."""
        return SampleStream(
            self.config, self.processor, self.weights, self.seed, self.rank, self.world_size,
            worker, max(self.config.num_workers, 1), state,
        )  # fmt: skip

    def __iter__(self) -> Iterator[dict]:
        workers = self.config.num_workers
        dataset = _WorkerDataset(self, self.consumed % max(workers, 1))
        kwargs = {"prefetch_factor": self.config.prefetch_factor} if workers else {}
        # Its own generator: DataLoader otherwise draws its worker seed from the global RNG here, after a resume
        # restored it, so dropout after a resume would differ from the uninterrupted run.
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=None, num_workers=workers, collate_fn=_identity,
            pin_memory=self.config.pin_memory, generator=torch.Generator().manual_seed(self.seed), **kwargs,
        )  # fmt: skip
        try:
            for batch in loader:
                self.worker_states[batch.pop("_worker")] = batch.pop("_state")
                self.consumed += 1
                self.bad_records().check()
                yield batch
        except SailvlError as exc:
            # Errors raised in a worker arrive wrapped with its traceback; keep the one-sentence message.
            lines = str(exc).strip().splitlines()
            if len(lines) > 1:
                raise SailvlError(lines[-1].split(": ", 1)[-1]) from None
            raise

    def bad_records(self) -> BadRecordCounter:
        """Bad-record counts summed over this rank's workers (as of the last batch consumed)."""
        total = BadRecordCounter(
            self.config.max_bad_fraction, self.config.min_records_before_abort, log=False
        )
        for state in self.worker_states.values():
            total.merge(state["bad"])
        return total

    def report(self) -> str:
        """One line for the end of a run: records seen and skipped per reason."""
        bad = self.bad_records()
        return f"rank {self.rank}: {bad.seen} records read, {bad.num_bad} skipped ({bad.summary()})"

    def state_dict(self) -> dict:
        """What the trainer checkpoints (plain python: ints, lists, dicts, strings)."""
        return {
            "version": STATE_VERSION,
            "seed": self.seed,
            "rank": self.rank,
            "world_size": self.world_size,
            "num_workers": self.config.num_workers,
            "consumed": self.consumed,
            "workers": {int(w): s for w, s in self.worker_states.items()},
            "data": self.data_fingerprint(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue after the last batch of the run that saved `state` (same config, rank, world size, workers).

        The data must be the same too (`data_fingerprint`): a change raises SailvlError naming it, unless the
        loader was built with `ignore_data_change`; then it is logged and the saved positions are kept, but
        samples buffered for packing are dropped (they may no longer fit), and if the number of sources
        changed every source starts from its beginning."""
        version = state.get("version")
        if version not in READABLE_VERSIONS:
            raise SailvlError(
                f"loader state version {version} is not one this sailvl reads "
                f"({', '.join(map(str, READABLE_VERSIONS))}); it was saved by another sailvl version"
            )
        for key in ("seed", "rank", "world_size", "num_workers"):
            mine = getattr(self, key) if key != "num_workers" else self.config.num_workers
            if state.get(key) != mine:
                raise SailvlError(
                    f"loader state was saved with {key}={state.get(key)}, this loader has {mine}"
                )
        self.consumed = int(state["consumed"])
        self.worker_states = {int(w): s for w, s in state["workers"].items()}
        if "data" not in state:
            logger.warning(
                "loader state version %s carries no data fingerprint (saved by an older sailvl): resuming "
                "without checking that its sources, mixture, packing and tokenizer are unchanged",
                version,
            )
            return
        self._check_data(state["data"])

    def _check_data(self, saved: dict) -> None:
        changes = data_changes(saved, self.data_fingerprint())
        if not changes:
            return
        what = "; ".join(f"loader state was saved {change}" for change in changes[:3])
        if not self.ignore_data_change:
            raise SailvlError(
                f"{what}: its positions and buffered samples belong to that data "
                "(sailvl train --resume-ignore-data resumes anyway)"
            )
        dropped = sum(len(w["buffer"]) + sum(map(len, w["packs"])) for w in self.worker_states.values())
        if len(saved["sources"]) != len(self.config.sources):
            self.worker_states, note = {}, "every source starts from its beginning"
        else:
            for worker in self.worker_states.values():
                worker["buffer"], worker["packs"] = [], []
            note = f"saved positions kept, {dropped} buffered samples dropped"
        logger.warning("%s; resuming anyway (ignore_data_change): %s", what, note)


def build_loader(
    data_config: DataConfig,
    processor,
    rank: int = 0,
    world_size: int = 1,
    seed: int = 0,
    ignore_data_change: bool = False,
) -> SailLoader:
    """The loader for one rank; iterate it for batches, checkpoint `state_dict()`. With `ignore_data_change`
    a state saved for other data (sources, mixture, packing, tokenizer) is restored anyway (logged)."""
    return SailLoader(data_config, processor, rank, world_size, seed, ignore_data_change)
