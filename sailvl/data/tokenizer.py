"""Training a small byte-level BPE tokenizer carrying the SAIL-VL special tokens and chat template."""

from collections.abc import Iterable

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from sailvl.config.constants import CHAT_TEMPLATE, IM_END, IM_START, PAD_TOKEN, SPECIAL_TOKENS
from sailvl.data.thinking import THINK_TOKENS

# The ChatML control tokens come first so their ids are stable (0, 1, 2) across vocab sizes.
CHAT_SPECIAL_TOKENS = [PAD_TOKEN, IM_START, IM_END]


def train_bpe_tokenizer(
    texts: Iterable[str], vocab_size: int = 512, think_tokens: bool = False
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on `texts` (deterministic for a fixed corpus).

    `vocab_size` counts the 256 byte symbols, the learned merges and the special tokens; it must exceed
    256 + the number of special tokens. `<|endoftext|>` is the pad token, `<|im_end|>` the eos token,
    and the image tokens (`<img>`, `</img>`, `<IMG_CONTEXT>`, ...) are added special tokens.
    With `think_tokens`, `<think>` and `</think>` become two more tokens, added after the `vocab_size` others and
    not special (as in Qwen3), so decoding keeps them; off by default, as adding them shifts the random init
    of a model sized to the tokenizer (the pinned tiny loss curve).
    """
    specials = CHAT_SPECIAL_TOKENS + list(SPECIAL_TOKENS)
    minimum = 256 + len(specials)
    if vocab_size <= minimum:
        raise ValueError(
            f"vocab_size must be greater than {minimum} (bytes + special tokens), got {vocab_size}"
        )
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts = list(texts)
    if think_tokens:  # the tags get their own ids below; BPE merges are not spent on their letters
        texts = [text.replace(THINK_TOKENS[0], " ").replace(THINK_TOKENS[1], " ") for text in texts]
    core.train_from_iterator(texts, trainer=trainer)
    if think_tokens:
        core.add_tokens([AddedToken(token, special=False, normalized=False) for token in THINK_TOKENS])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=PAD_TOKEN,
        eos_token=IM_END,
        additional_special_tokens=[IM_START, *SPECIAL_TOKENS],
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer
