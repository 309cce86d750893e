"""Shared constants of the SAIL-VL format: special tokens, chat template, image normalisation."""

IMG_START = "<img>"
IMG_END = "</img>"
IMG_CONTEXT = "<IMG_CONTEXT>"
IMAGE_PLACEHOLDER = "<image>"
# Added after the base vocabulary in this order (Qwen2.5 ids 151665.. in the released checkpoints).
SPECIAL_TOKENS = [IMG_START, IMG_END, IMG_CONTEXT, "<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>"]
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
PAD_TOKEN = "<|endoftext|>"

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."

# Chat formats by the name the released configs give them (`template` in config.json). `sailvl-chat` is SAIL-VL
# 1.x's; `univl-chat` is SAIL-VL2's: the same MPT-style ChatML, with the release's default system prompt
# (ms-swift's `sail_vl2` template, SAIL_VL_DEFAULT_SYSTEM) and a system turn that is always rendered.
SAILVL_CHAT = "sailvl-chat"
UNIVL_CHAT = "univl-chat"
CHAT_TEMPLATE_NAMES = (SAILVL_CHAT, UNIVL_CHAT)
UNIVL_SYSTEM_PROMPT = "你是由抖音内容理解组开发的多模态大模型，英文名叫UniVL, 是一个有用无害的人工智能助手。"
# `sailvl convert --from sailvl-remote` keeps what converting back restores: the released config.json (with the
# family and whether a tied head is stored) under RELEASE_KEY in the converted config.json, which training
# carries to every export; the release's tokenizer / processor file texts and file names in RELEASE_FILE.
RELEASE_KEY = "sailvl_release"
RELEASE_FILE = "sailvl_release.json"

# `sailvl-chat`: Qwen ChatML with no newline between turns (MPT separator style), see SPEC 1.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

IGNORE_INDEX = -100
