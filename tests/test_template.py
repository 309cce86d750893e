"""Golden label-masking tests for the sailvl-chat template: only assistant answers and their <|im_end|> train."""

import pytest
import torch
from PIL import Image

from sailvl.config.constants import IGNORE_INDEX, IMG_CONTEXT
from sailvl.data import template
from sailvl.data.images import BadRecord

SYS = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>"


def image(width=224, height=112, colour="red") -> Image.Image:
    return Image.new("RGB", (width, height), colour)


def labelled_runs(tokenizer, sample) -> list[str]:
    """Decode each contiguous run of labelled tokens."""
    runs, current = [], []
    for token, label in zip(sample.input_ids.tolist(), sample.labels.tolist(), strict=True):
        if label == IGNORE_INDEX:
            if current:
                runs.append(current)
            current = []
        else:
            assert label == token
            current.append(token)
    if current:
        runs.append(current)
    return [tokenizer.decode(run) for run in runs]


def image_block(n_tiles: int, tokens_per_tile: int = 16) -> str:
    return "<img>" + IMG_CONTEXT * (tokens_per_tile * n_tiles) + "</img>"


def test_single_turn_with_image(tiny_processor, tiny_tokenizer):
    conversation = [
        {"role": "user", "content": "<image>\nWhat colour is the circle?"},
        {"role": "assistant", "content": "It is red."},
    ]
    sample = tiny_processor.encode_sample(conversation, [image()])
    assert sample.num_tiles == [3]  # (2, 1) grid + thumbnail
    expected = (
        SYS + "<|im_start|>user\n" + image_block(3) + "\nWhat colour is the circle?<|im_end|>"
        "<|im_start|>assistant\nIt is red.<|im_end|>"
    )
    assert tiny_tokenizer.decode(sample.input_ids) == expected
    assert labelled_runs(tiny_tokenizer, sample) == ["It is red.<|im_end|>"]
    assert (sample.input_ids == tiny_processor.image_token_id).sum().item() == 16 * 3
    assert sample.pixel_values.shape == (3, 3, 112, 112)
    # The labels are exactly the tail after the last generation prompt.
    prompt_ids = tiny_tokenizer("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    ids = sample.input_ids.tolist()
    start = max(i for i in range(len(ids)) if ids[i : i + len(prompt_ids)] == prompt_ids) + len(prompt_ids)
    assert (sample.labels[:start] == IGNORE_INDEX).all()
    assert torch.equal(sample.labels[start:], sample.input_ids[start:])


def test_multi_turn(tiny_processor, tiny_tokenizer):
    conversation = [
        {"role": "user", "content": "What colour is the square?"},
        {"role": "assistant", "content": "It is blue."},
        {"role": "user", "content": "How many shapes?"},
        {"role": "assistant", "content": "There are 3 shapes."},
        {"role": "user", "content": "And the star?"},
        {"role": "assistant", "content": " A yellow star is on the left.\n"},
    ]
    sample = tiny_processor.encode_sample(conversation, [image()])
    assert labelled_runs(tiny_tokenizer, sample) == [
        "It is blue.<|im_end|>",
        "There are 3 shapes.<|im_end|>",
        " A yellow star is on the left.\n<|im_end|>",
    ]
    # The image placeholder was inserted at the start of the first user turn.
    text = tiny_tokenizer.decode(sample.input_ids)
    assert text.startswith(SYS + "<|im_start|>user\n" + image_block(3) + "\nWhat colour")


def test_multi_image_prefixes(tiny_processor, tiny_tokenizer):
    conversation = [
        {"role": "user", "content": "Which is red?"},
        {"role": "assistant", "content": "The first."},
    ]
    images = [image(), image(100, 100, "blue")]
    sample = tiny_processor.encode_sample(conversation, images)
    assert sample.num_tiles == [3, 1]
    expected_user = f"Image-1: {image_block(3)}\nImage-2: {image_block(1)}\nWhich is red?"
    assert f"<|im_start|>user\n{expected_user}<|im_end|>" in tiny_tokenizer.decode(sample.input_ids)
    assert labelled_runs(tiny_tokenizer, sample) == ["The first.<|im_end|>"]
    assert sample.pixel_values.shape[0] == 4


def test_multi_image_existing_placeholders_keep_prefixes(tiny_processor, tiny_tokenizer):
    conversation = [
        {"role": "user", "content": "Image-1: <image>\nand <image>\nsame?"},
        {"role": "assistant", "content": "No."},
    ]
    sample = tiny_processor.encode_sample(conversation, [image(100, 100), image(100, 100)])
    text = tiny_tokenizer.decode(sample.input_ids)
    assert f"user\nImage-1: {image_block(1)}\nand Image-2: {image_block(1)}\nsame?" in text
    assert text.count("Image-1") == 1


def test_text_only_and_no_system(tiny_tokenizer):
    from sailvl.data.processor import SailVLProcessor

    processor = SailVLProcessor(tiny_tokenizer, tile_size=112, max_tiles=4, system_prompt=None)
    conversation = [{"role": "user", "content": "Say 7."}, {"role": "assistant", "content": "7"}]
    sample = processor.encode_sample(conversation, [])
    assert (
        tiny_tokenizer.decode(sample.input_ids)
        == "<|im_start|>user\nSay 7.<|im_end|><|im_start|>assistant\n7<|im_end|>"
    )
    assert labelled_runs(tiny_tokenizer, sample) == ["7<|im_end|>"]
    assert sample.pixel_values.shape == (0, 3, 112, 112) and sample.num_tiles == []


def test_own_system_turn_is_kept_and_never_labelled(tiny_processor, tiny_tokenizer):
    conversation = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Colour?"},
        {"role": "assistant", "content": "Green. Café ✓"},
    ]
    sample = tiny_processor.encode_sample(conversation, [])
    text = tiny_tokenizer.decode(sample.input_ids)
    assert text.startswith("<|im_start|>system\nAnswer briefly.<|im_end|><|im_start|>user")
    assert "helpful" not in text
    assert labelled_runs(tiny_tokenizer, sample) == ["Green. Café ✓<|im_end|>"]


def test_empty_answer_labels_only_end_marker(tiny_processor, tiny_tokenizer):
    sample = tiny_processor.encode_sample(
        [{"role": "user", "content": "Nothing?"}, {"role": "assistant", "content": ""}], []
    )
    assert labelled_runs(tiny_tokenizer, sample) == ["<|im_end|>"]


@pytest.mark.parametrize(
    ("content", "n_images"),
    [("<image>\n<image>\nTwo?", 1), ("<image>\nOne?", 0), ("<image>\nOne?", 2)],
)
def test_placeholder_count_mismatch(tiny_processor, content, n_images):
    conversation = [{"role": "user", "content": content}, {"role": "assistant", "content": "x"}]
    with pytest.raises(BadRecord) as err:
        tiny_processor.encode_sample(conversation, [image()] * n_images)
    assert err.value.reason == "image_count_mismatch"


def test_bad_conversation(tiny_processor):
    with pytest.raises(BadRecord) as err:
        tiny_processor.encode_sample([{"role": "gpt", "content": "x"}], [])
    assert err.value.reason == "bad_schema"


def test_spans_follow_the_template(tiny_tokenizer):
    messages = [
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "Q2"},
        {"role": "assistant", "content": "A2"},
    ]
    text = template.render(tiny_tokenizer, messages)
    spans = template.assistant_spans(tiny_tokenizer, messages)
    assert [text[s:e] for s, e in spans] == ["A1<|im_end|>", "A2<|im_end|>"]
    # A template that re-renders earlier turns differently is refused rather than mis-masked.
    numbered = "{% for m in messages %}{{ messages|length }}{{ m['content'] }}{% endfor %}"
    with pytest.raises(ValueError):
        template.assistant_spans(tiny_tokenizer, messages, chat_template=numbered)


def test_prompt_ends_with_generation_prompt(tiny_processor, tiny_tokenizer):
    batch = tiny_processor.encode_prompt("What colour?", [image()])
    text = tiny_tokenizer.decode(batch["input_ids"][0])
    assert text.endswith(
        "<|im_start|>user\n" + image_block(3) + "\nWhat colour?<|im_end|><|im_start|>assistant\n"
    )
    assert batch["pixel_values"].shape == (3, 3, 112, 112)


def test_literal_image_tokens_in_text_are_refused(tiny_processor):
    conversation = [
        {"role": "user", "content": "look <IMG_CONTEXT> here"},
        {"role": "assistant", "content": "x"},
    ]
    with pytest.raises(BadRecord) as err:
        tiny_processor.encode_sample(conversation, [])
    assert err.value.reason == "bad_schema"


def test_expand_image_ids_repeats_each_context_token():
    ids = torch.tensor([1, 7, 2, 7, 3])
    labels = torch.tensor([-100, -100, 2, 7, 3])
    out_ids, out_labels = template.expand_image_ids(ids, labels, context_id=7, repeats=[2, 3])
    assert out_ids.tolist() == [1, 7, 7, 2, 7, 7, 7, 3]
    assert out_labels.tolist() == [-100, -100, -100, 2, -100, -100, -100, 3]  # image tokens never train
    with pytest.raises(ValueError):
        template.expand_image_ids(ids, labels, context_id=7, repeats=[2])


def qwen_style_tokenizer():
    """A BPE tokenizer with Qwen2's pre-tokenizer split, whose `\\s*[\\r\\n]+` makes "\\n\\n" one piece."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from sailvl.config.constants import SPECIAL_TOKENS

    pattern = (
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
        r"|\s*[\r\n]+|\s+(?!\S)|\s+"
    )
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    core.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *SPECIAL_TOKENS]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    core.train_from_iterator(["assistant\n\nred\n\nblue\n\n"] * 50, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<|endoftext|>", eos_token="<|im_end|>")


def test_answer_edge_never_merges_with_the_prompt():
    tokenizer = qwen_style_tokenizer()
    messages = [{"role": "user", "content": "red"}, {"role": "assistant", "content": "\nblue"}]
    whole = tokenizer(template.render(tokenizer, messages), add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_tokens_to_ids("ĊĊ") in whole  # tokenising the whole text merges across the edge
    input_ids, labels = template.encode_messages(tokenizer, messages)
    target = input_ids[labels != IGNORE_INDEX]
    assert tokenizer.decode(target) == "\nblue<|im_end|>"
    prompt = template.render(tokenizer, messages[:1], add_generation_prompt=True)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert input_ids[: len(prompt_ids)].tolist() == prompt_ids  # the prefix is the generation prompt
    assert (labels[: len(prompt_ids)] == IGNORE_INDEX).all() and (
        labels[len(prompt_ids) :] != IGNORE_INDEX
    ).all()


def test_text_cache_gives_the_same_ids_and_is_never_changed_by_callers(tiny_tokenizer):
    conversation = [
        {"role": "user", "content": "<image>\nWhat colour is the circle?"},
        {"role": "assistant", "content": "red"},
    ]
    cold = template.TextCache()
    uncached = template.encode_messages(
        tiny_tokenizer, template.prepare_conversation(conversation, 1), [2], 16
    )
    first = template.encode_messages(
        tiny_tokenizer, template.prepare_conversation(conversation, 1), [2], 16, cache=cold
    )
    first[0].fill_(0)
    first[1].fill_(0)  # a caller writing into what it got back must not reach the cache
    second = template.encode_messages(
        tiny_tokenizer, template.prepare_conversation(conversation, 1), [3], 16, cache=cold
    )
    assert (cold.hits, cold.misses, len(cold)) == (1, 1, 1)
    again = template.encode_messages(tiny_tokenizer, template.prepare_conversation(conversation, 1), [3], 16)
    assert torch.equal(second[0], again[0]) and torch.equal(second[1], again[1])
    assert second[0].numel() == uncached[0].numel() + 16  # the image count is applied after the cache
    other = template.encode_messages(
        tiny_tokenizer, template.prepare_conversation(conversation, 1), [2], 16, True, cache=cold
    )
    assert len(cold) == 2 and other[0].numel() != uncached[0].numel()  # the prompt flag is part of the key


def test_text_cache_is_bounded_by_tokens_and_starts_empty_in_a_worker(tiny_tokenizer):
    import pickle

    cache = template.TextCache(max_tokens=60)
    sizes = []
    for k in range(6):
        messages = template.prepare_conversation(
            [{"role": "user", "content": f"question {k}"}, {"role": "assistant", "content": "red"}], 0
        )
        sizes.append(template.encode_messages(tiny_tokenizer, messages, cache=cache)[0].numel())
    assert cache.tokens <= 60 and cache.tokens == sum(sizes[-len(cache) :])
    assert 0 < len(cache) < 6  # the oldest were dropped
    copy = pickle.loads(pickle.dumps(cache))
    assert len(copy) == 0 and copy.max_tokens == 60
