"""The chat formats (sailvl-chat, univl-chat): image placeholders, rendering, and assistant-only label masks."""

import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch

from sailvl.config.constants import (
    CHAT_TEMPLATE,
    DEFAULT_SYSTEM_PROMPT,
    IGNORE_INDEX,
    IMAGE_PLACEHOLDER,
    IMG_CONTEXT,
    IMG_END,
    IMG_START,
    SAILVL_CHAT,
    UNIVL_CHAT,
    UNIVL_SYSTEM_PROMPT,
)
from sailvl.data.images import BadRecord
from sailvl.errors import SailvlError

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class ChatFormat:
    """A named chat format: the Jinja template, the default system prompt, and whether a system turn is
    always rendered (the released MPT-style conversation.py writes `<|im_start|>system\n{msg}<|im_end|>`
    even for an empty message; sailvl-chat omits the turn when the prompt is None)."""

    name: str
    jinja: str
    default_system: str
    always_system: bool


CHAT_FORMATS = {
    SAILVL_CHAT: ChatFormat(SAILVL_CHAT, CHAT_TEMPLATE, DEFAULT_SYSTEM_PROMPT, always_system=False),
    # SAIL-VL2's format: same separators (no newline between turns), its own default system prompt.
    UNIVL_CHAT: ChatFormat(UNIVL_CHAT, CHAT_TEMPLATE, UNIVL_SYSTEM_PROMPT, always_system=True),
}


def get_chat_format(name: str) -> ChatFormat:
    """The chat format called `name`; an unknown name raises listing the known ones."""
    if name not in CHAT_FORMATS:
        raise SailvlError(f"unknown chat template {name!r}; known: {', '.join(CHAT_FORMATS)}")
    return CHAT_FORMATS[name]


def prepare_conversation(
    conversation: list[dict], num_images: int, system_prompt: str | None = None, always_system: bool = False
) -> list[dict]:
    """Validated copy of `conversation` ready to render (the input is not modified).

    Adds a system turn with `system_prompt` unless the conversation has one or the prompt is None/empty
    (with `always_system`, an empty prompt still gives an empty system turn).
    With images but no `<image>` placeholder, puts one `<image>\\n` per image at the start of the first
    user turn. With several images, each placeholder gets an `Image-k: ` prefix unless it has one.
    Raises `BadRecord("image_count_mismatch")` when placeholders and images differ in number.
    """
    messages = []
    for index, turn in enumerate(conversation):
        role, content = turn.get("role"), turn.get("content")
        if role not in ROLES or not isinstance(content, str):
            raise BadRecord(
                "bad_schema",
                f"turn {index} must be {{'role': one of {ROLES}, 'content': str}}, got {turn!r:.120}",
            )
        messages.append({"role": role, "content": content})
    for message in messages:
        if any(token in message["content"] for token in (IMG_START, IMG_END, IMG_CONTEXT)):
            raise BadRecord(
                "bad_schema",
                f"a turn contains a literal {IMG_START}/{IMG_END}/{IMG_CONTEXT} token; use <image>",
            )
    if not any(m["role"] == "user" for m in messages):
        raise BadRecord("bad_schema", "the conversation has no user turn")
    placeholders = sum(m["content"].count(IMAGE_PLACEHOLDER) for m in messages)
    if num_images and not placeholders:
        first_user = next(m for m in messages if m["role"] == "user")
        first_user["content"] = f"{IMAGE_PLACEHOLDER}\n" * num_images + first_user["content"]
        placeholders = num_images
    if placeholders != num_images:
        raise BadRecord(
            "image_count_mismatch",
            f"the conversation has {placeholders} {IMAGE_PLACEHOLDER} placeholders but {num_images} images",
        )
    if num_images > 1:
        _add_image_prefixes(messages)
    if (system_prompt or always_system) and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system_prompt or ""})
    return messages


def _add_image_prefixes(messages: list[dict]) -> None:
    """Write `Image-k: ` before the k-th placeholder (k from 1) where that exact prefix is missing."""
    k = 0
    for message in messages:
        parts = message["content"].split(IMAGE_PLACEHOLDER)
        for i in range(len(parts) - 1):
            k += 1
            if not parts[i].endswith(f"Image-{k}: "):
                parts[i] += f"Image-{k}: "
        message["content"] = IMAGE_PLACEHOLDER.join(parts)


def compact_images(messages: list[dict]) -> list[dict]:
    """Replace each `<image>` with `<img><IMG_CONTEXT></img>`: one context token per image, expanded later
    on token ids (tokenising thousands of context tokens as text is the slowest part of encoding)."""
    block = IMG_START + IMG_CONTEXT + IMG_END
    return [{"role": m["role"], "content": m["content"].replace(IMAGE_PLACEHOLDER, block)} for m in messages]


def expand_image_ids(
    input_ids: torch.Tensor, labels: torch.Tensor, context_id: int, repeats: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Repeat the k-th `context_id` token `repeats[k]` times in `input_ids` and `labels` (label -100)."""
    positions = (input_ids == context_id).nonzero().flatten()
    if len(positions) != len(repeats):
        raise ValueError(f"found {len(positions)} image context tokens for {len(repeats)} images")
    counts = torch.ones_like(input_ids)
    counts[positions] = torch.tensor(repeats, dtype=counts.dtype)
    labels = labels.clone()
    labels[positions] = IGNORE_INDEX
    return input_ids.repeat_interleave(counts), labels.repeat_interleave(counts)


def render(
    tokenizer, messages: list[dict], add_generation_prompt: bool = False, chat_template: str = CHAT_TEMPLATE
) -> str:
    """The conversation as text in the chat template (sailvl-chat by default)."""
    return tokenizer.apply_chat_template(
        messages, chat_template=chat_template, tokenize=False, add_generation_prompt=add_generation_prompt
    )


def assistant_spans(
    tokenizer, messages: list[dict], chat_template: str = CHAT_TEMPLATE
) -> list[tuple[int, int]]:
    """Character spans `[start, end)` in `render(messages)` of each assistant answer with its end marker.

    Measured from the template itself: an answer starts where the rendering of the turns before it,
    plus the generation prompt, ends, and stops where the rendering up to and including it ends.
    """
    full = render(tokenizer, messages, chat_template=chat_template)
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = render(tokenizer, messages[:index], add_generation_prompt=True, chat_template=chat_template)
        upto = render(tokenizer, messages[: index + 1], chat_template=chat_template)
        if not (upto.startswith(prefix) and full.startswith(upto)):
            raise ValueError("the chat template does not render conversations prefix by prefix")
        spans.append((len(prefix), len(upto)))
    return spans


def _encode_text(
    tokenizer, messages: list[dict], add_generation_prompt: bool, chat_template: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ids and labels of compacted `messages` (one context token per image), before the image expansion."""
    text = render(
        tokenizer, messages, add_generation_prompt=add_generation_prompt, chat_template=chat_template
    )
    spans = [] if add_generation_prompt else assistant_spans(tokenizer, messages, chat_template)
    # Tokenise piece by piece, cut at the answer edges: a BPE merge across an edge (e.g. "\n" + an answer
    # starting with "\n") cannot blur the mask, and answers are tokenised as generate() would emit them.
    edges = [0, *(edge for span in spans for edge in span), len(text)]
    pieces = [(text[lo:hi], i % 2 == 1) for i, (lo, hi) in enumerate(zip(edges, edges[1:], strict=False))]
    pieces = [(piece, target) for piece, target in pieces if piece]
    encoded = tokenizer([piece for piece, _ in pieces], add_special_tokens=False)["input_ids"]
    ids_list, label_list = [], []
    for (_, target), ids in zip(pieces, encoded, strict=True):
        ids_list += ids
        label_list += ids if target else [IGNORE_INDEX] * len(ids)
    return torch.tensor(ids_list, dtype=torch.long), torch.tensor(label_list, dtype=torch.long)


class TextCache:
    """Least-recently-used encodings of conversations (`encode_messages`), bounded by the tokens held.

    Rendering the chat template and tokenising is most of a small model's data time, and a training run
    draws the same records epoch after epoch. Entries are never handed out to be changed (`expand_image_ids`
    returns new tensors). Tied to one tokenizer: a processor owns one. Safe to share between threads."""

    def __init__(self, max_tokens: int = 1 << 22):
        self.max_tokens = max_tokens
        self.tokens = 0
        self.hits = self.misses = 0
        self._entries: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> tuple[torch.Tensor, torch.Tensor] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry

    def put(self, key: tuple, entry: tuple[torch.Tensor, torch.Tensor]) -> None:
        size = entry[0].numel()
        if size > self.max_tokens:
            return
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = entry
            self.tokens += size
            while self.tokens > self.max_tokens:
                _, (old_ids, _) = self._entries.popitem(last=False)
                self.tokens -= old_ids.numel()

    def __len__(self) -> int:
        return len(self._entries)

    def __getstate__(self) -> dict:  # a DataLoader worker gets an empty cache of its own
        return {"max_tokens": self.max_tokens}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["max_tokens"])


def encode_messages(
    tokenizer,
    messages: list[dict],
    num_tiles: list[int] | None = None,
    tokens_per_tile: int = 0,
    add_generation_prompt: bool = False,
    chat_template: str = CHAT_TEMPLATE,
    cache: TextCache | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids `[L]` of the rendered conversation and labels `[L]`: the id on assistant answers (and
    their `<|im_end|>`), IGNORE_INDEX (-100) elsewhere. The k-th `<image>` in `messages` becomes `<img>`,
    `tokens_per_tile * num_tiles[k]` `<IMG_CONTEXT>` tokens, `</img>`. With `cache`, a conversation seen
    before (same turns, template and prompt flag) skips rendering and tokenising: the same ids, faster."""
    messages = compact_images(messages)
    key = (chat_template, add_generation_prompt, *((m["role"], m["content"]) for m in messages))
    cached = cache.get(key) if cache is not None else None
    if cached is None:
        cached = _encode_text(tokenizer, messages, add_generation_prompt, chat_template)
        if cache is not None:
            cache.put(key, cached)
    input_ids, labels = cached
    repeats = [tokens_per_tile * n for n in (num_tiles or [])]
    context_id = tokenizer.convert_tokens_to_ids(IMG_CONTEXT)
    return expand_image_ids(input_ids, labels, context_id, repeats)
