"""SailVLProcessor: images to normalised tiles, conversations to token ids and labels, save/load."""

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from sailvl.config.constants import IMAGENET_MEAN, IMAGENET_STD, IMG_CONTEXT, SAILVL_CHAT
from sailvl.data import template as template_module
from sailvl.data import tiling
from sailvl.data.processor_files import (
    HF_IMAGE_PROCESSOR_FILE,
    HF_PROCESSOR_FILE,
    PROCESSOR_FILE,
    SETTINGS,
    TOKENIZER_CONFIG,
    hf_chat_template,
    image_side,
    name_image_tokens,
    read_settings,
)
from sailvl.errors import SailvlError

# `system_prompt` left to the chat format's default (None means "no system turn", so it cannot be the marker).
TEMPLATE_DEFAULT = object()


@dataclass
class EncodedSample:
    """One training sample: `input_ids [L]`, `labels [L]` (-100 off assistant answers),
    `pixel_values [n, 3, T, T]` (all tiles of all images, in order), `num_tiles` (tiles per image)."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    pixel_values: torch.Tensor
    num_tiles: list[int] = field(default_factory=list)


class SailVLProcessor:
    """Turns (conversation, images) into model inputs for transformers' InternVL in the SAIL-VL format.

    `tile_size` and `patch_size` are pixels; each tile becomes
    `(tile_size / patch_size)^2 * downsample_ratio^2` image tokens. Images get between `min_tiles` and
    `max_tiles` tiles (plus a thumbnail when `use_thumbnail` and more than one tile); with several images
    each gets at most `max_total_tiles // n_images` (at least 1). `template` names the chat format
    (`sailvl-chat`, or SAIL-VL2's `univl-chat`); `system_prompt` defaults to that format's own, and None omits
    the system turn where the format allows. `use_msac`: prompts with one image get the MSAC second tiling
    pass unless a call says otherwise (SAIL-VL2's `preprocessor_config.json` setting).
    """

    def __init__(
        self,
        tokenizer,
        tile_size: int = 448,
        patch_size: int = 14,
        downsample_ratio: float = 0.5,
        min_tiles: int = 1,
        max_tiles: int = 12,
        use_thumbnail: bool = True,
        system_prompt: str | None | object = TEMPLATE_DEFAULT,
        max_total_tiles: int | None = 64,
        template: str = SAILVL_CHAT,
        use_msac: bool = False,
    ):
        if tile_size % patch_size:
            raise ValueError(f"tile_size {tile_size} must be a multiple of patch_size {patch_size}")
        side = tile_size // patch_size * downsample_ratio
        if side != int(side):
            raise ValueError(
                f"downsample_ratio {downsample_ratio} must divide {tile_size // patch_size} patches"
            )
        tiling.candidate_grids(min_tiles, max_tiles)  # validates the tile range
        self.tokenizer = tokenizer
        self.tile_size = tile_size
        self.patch_size = patch_size
        self.downsample_ratio = downsample_ratio
        self.min_tiles = min_tiles
        self.max_tiles = max_tiles
        self.use_thumbnail = use_thumbnail
        self.chat_format = template_module.get_chat_format(template)
        self.template = template
        self.system_prompt = (
            self.chat_format.default_system if system_prompt is TEMPLATE_DEFAULT else system_prompt
        )
        self.max_total_tiles = max_total_tiles
        self.use_msac = use_msac
        self.chat_template = self.chat_format.jinja
        self.text_cache = template_module.TextCache()
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMG_CONTEXT)
        if self.image_token_id is None or self.image_token_id == tokenizer.unk_token_id:
            raise SailvlError(
                f"the tokenizer has no {IMG_CONTEXT} token; add the SAIL-VL special tokens first"
            )

    @property
    def num_image_tokens(self) -> int:
        """Image tokens per tile after pixel shuffle (256 for 448 px tiles, patch 14, ratio 0.5)."""
        return int((self.tile_size // self.patch_size * self.downsample_ratio) ** 2)

    @classmethod
    def for_model(cls, tokenizer, model_config, **kwargs) -> "SailVLProcessor":
        """A processor matching an InternVL config (tile and patch size from `vision_config`,
        `downsample_ratio`); `kwargs` override any setting."""
        vision = model_config.vision_config
        settings = {
            "tile_size": image_side(vision.image_size),
            "patch_size": image_side(vision.patch_size),
            "downsample_ratio": float(model_config.downsample_ratio),
        }
        settings.update(kwargs)
        processor = cls(tokenizer, **settings)
        expected = getattr(model_config, "image_token_id", None)
        if expected is not None and expected != processor.image_token_id:
            raise SailvlError(
                f"the model's image_token_id is {expected} but the tokenizer's {IMG_CONTEXT} is "
                f"{processor.image_token_id}"
            )
        return processor

    def settings(self) -> dict:
        """The image and prompt settings saved in `sailvl_processor.json`."""
        return {name: getattr(self, name) for name in SETTINGS}

    def hf_image_processor_config(self) -> dict:
        """`preprocessor_config.json` for transformers' GotOcr2ImageProcessor: the same tiling (1..max_tiles
        tiles of `tile_size` px plus a thumbnail, bicubic) and ImageNet normalisation as `tile_image`."""
        return {
            "image_processor_type": "GotOcr2ImageProcessor",
            "processor_class": "InternVLProcessor",
            "size": {"height": self.tile_size, "width": self.tile_size},
            "crop_to_patches": True,
            "min_patches": self.min_tiles,
            "max_patches": self.max_tiles,
            "do_resize": True,
            "resample": 3,  # PIL bicubic
            "do_rescale": True,
            "rescale_factor": 1 / 255,
            "do_normalize": True,
            "image_mean": list(IMAGENET_MEAN),
            "image_std": list(IMAGENET_STD),
            "do_convert_rgb": True,
        }

    def hf_processor_config(self) -> dict:
        """`processor_config.json` for transformers' InternVLProcessor: image tokens per tile and a chat template
        that renders OpenAI-style messages (image / text items, as servers pass them) in sailvl's format."""
        return {
            "processor_class": "InternVLProcessor",
            "image_seq_length": self.num_image_tokens,
            "chat_template": hf_chat_template(self.system_prompt),
        }

    def save_pretrained(self, directory: str | Path) -> None:
        """Write the tokenizer (with the sailvl-chat template), `sailvl_processor.json`, and the files
        transformers' `AutoProcessor` (InternVLProcessor) reads, so a server can load the directory as is."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.tokenizer.chat_template = self.chat_template
        self.tokenizer.save_pretrained(directory)
        name_image_tokens(directory / TOKENIZER_CONFIG, self.tokenizer.get_vocab())
        (directory / PROCESSOR_FILE).write_text(json.dumps(self.settings(), indent=2) + "\n")
        for name, data in (
            (HF_IMAGE_PROCESSOR_FILE, self.hf_image_processor_config()),
            (HF_PROCESSOR_FILE, self.hf_processor_config()),
        ):
            (directory / name).write_text(json.dumps(data, indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, directory: str | Path, **kwargs) -> "SailVLProcessor":
        """Load the tokenizer and settings saved by `save_pretrained` (offline). A plain transformers
        InternVL directory without `sailvl_processor.json` takes its tile settings from `config.json`."""
        from transformers import AutoTokenizer

        directory = Path(directory)
        if not directory.is_dir():
            raise SailvlError(f"processor directory {directory} does not exist")
        settings = read_settings(directory)
        settings.update(kwargs)
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(directory))
        except (OSError, ValueError) as err:
            raise SailvlError(f"no loadable tokenizer in {directory}: {err}") from err
        return cls(tokenizer, **settings)

    def tile_limit(self, num_images: int, max_tiles: int | None) -> int:
        """Tiles per image for a prompt with `num_images` images (the multi-image total cap applied)."""
        limit = self.max_tiles if max_tiles is None else max_tiles
        if self.max_total_tiles and num_images > 1:
            limit = min(limit, self.max_total_tiles // num_images)
        return max(self.min_tiles, limit, 1)

    def count_tiles(self, width: int, height: int, max_tiles: int | None = None) -> int:
        """Tiles `tile_image` gives a `width x height` image (thumbnail included), without resizing it."""
        limit = self.max_tiles if max_tiles is None else max_tiles
        cols, rows = tiling.choose_grid(width, height, self.tile_size, min(self.min_tiles, limit), limit)
        return cols * rows + (1 if self.use_thumbnail and cols * rows > 1 else 0)

    def tile_image(
        self, image: Image.Image, max_tiles: int | None = None, msac: bool = False, uint8: bool = False
    ) -> torch.Tensor:
        """Normalised tiles `[n, 3, T, T]` of one image (MSAC second pass when `msac`, inference only); with
        `uint8` the raw pixels, for `sailvl.data.tiling.normalize_pixels` on the device."""
        limit = self.max_tiles if max_tiles is None else max_tiles
        split = tiling.msac_tiles if msac else tiling.tile_image
        tiles = split(image, self.tile_size, min(self.min_tiles, limit), limit, self.use_thumbnail)
        return tiling.stack_tiles(tiles) if uint8 else tiling.normalize(tiles)

    def _images_to_pixels(
        self, images: list[Image.Image | torch.Tensor], max_tiles: int | None, msac: bool, uint8: bool = False
    ) -> tuple[torch.Tensor | None, list[int]]:
        if not images:
            return None, []
        limit = self.tile_limit(len(images), max_tiles)
        # An image may come as a tensor whose first dimension is its tile count: tiles, or an `[n, 0]` placeholder when
        # its embeddings are cached (`sailvl.infer.vision_cache`). It is used as it is.
        per_image = [
            im if isinstance(im, torch.Tensor) else self.tile_image(im, limit, msac, uint8) for im in images
        ]
        return torch.cat(per_image), [len(p) for p in per_image]

    def _encode(
        self,
        conversation: list[dict],
        images: list[Image.Image],
        max_tiles: int | None,
        msac: bool,
        prompt: bool,
        uint8: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, list[int]]:
        # Validate the conversation before the (much slower) tiling.
        messages = template_module.prepare_conversation(
            conversation, len(images), self.system_prompt, self.chat_format.always_system
        )
        pixels, num_tiles = self._images_to_pixels(images, max_tiles, msac, uint8)
        input_ids, labels = template_module.encode_messages(
            self.tokenizer,
            messages,
            num_tiles,
            self.num_image_tokens,
            add_generation_prompt=prompt,
            chat_template=self.chat_template,
            cache=self.text_cache,
        )
        return input_ids, labels, pixels, num_tiles

    def encode_sample(
        self,
        conversation: list[dict],
        images: list[Image.Image],
        max_tiles: int | None = None,
        uint8: bool = False,
    ) -> EncodedSample:
        """Token ids, labels (assistant answers only) and tiles of one training conversation (`uint8`: raw tiles,
        normalised later on the device)."""
        input_ids, labels, pixels, num_tiles = self._encode(
            conversation, images, max_tiles, False, False, uint8
        )
        if pixels is None:
            pixels = torch.zeros(
                0, 3, self.tile_size, self.tile_size, dtype=torch.uint8 if uint8 else torch.float32
            )
        return EncodedSample(input_ids=input_ids, labels=labels, pixel_values=pixels, num_tiles=num_tiles)

    def encode_prompt(
        self,
        question_or_conversation: str | list[dict],
        images: list[Image.Image] | None = None,
        max_tiles: int | None = None,
        msac: bool | None = None,
    ) -> dict:
        """A batch of one for `generate`: `input_ids [1, L]`, `attention_mask [1, L]`, `pixel_values`
        (`[n, 3, T, T]`, or None without images), `num_tiles`; ends with the assistant generation prompt."""
        return self.encode_prompts([question_or_conversation], [images or []], max_tiles=max_tiles, msac=msac)

    def encode_prompts(
        self,
        questions_or_conversations: list[str | list[dict]],
        images: list[list[Image.Image]] | None = None,
        max_tiles: int | None = None,
        msac: bool | None = None,
    ) -> dict:
        """A left-padded batch for `generate` (pad = the tokenizer's pad token): `input_ids [B, L]`,
        `attention_mask [B, L]`, `pixel_values` (all tiles in prompt order, or None), `num_tiles`.
        `msac=None`: the processor's `use_msac` for single-image prompts (as the released processor does)."""
        images = images if images is not None else [[] for _ in questions_or_conversations]
        if len(images) != len(questions_or_conversations):
            raise ValueError("encode_prompts needs one image list per prompt")
        rows, all_pixels, all_tiles = [], [], []
        for prompt, prompt_images in zip(questions_or_conversations, images, strict=True):
            conversation = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
            use_msac = self.use_msac and len(prompt_images) == 1 if msac is None else msac
            ids, _, pixels, num_tiles = self._encode(
                conversation, list(prompt_images), max_tiles, use_msac, True
            )
            rows.append(ids)
            all_tiles.append(num_tiles)
            if pixels is not None:
                all_pixels.append(pixels)
        length = max(len(r) for r in rows)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, length - len(row) :] = row
            attention_mask[i, length - len(row) :] = 1
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "pixel_values": torch.cat(all_pixels) if all_pixels else None,
            "num_tiles": all_tiles,
        }


def write_processor_files(model_dir: str | Path) -> bool:
    """Give a model directory that has a tokenizer but no processor settings (a converted release) the files
    sailvl and transformers' InternVLProcessor read, from its config.json; False when it has no tokenizer."""
    model_dir = Path(model_dir)
    if (model_dir / PROCESSOR_FILE).is_file():
        return False
    if not any((model_dir / name).is_file() for name in ("tokenizer.json", "vocab.json")):
        return False
    SailVLProcessor.from_pretrained(model_dir).save_pretrained(model_dir)
    return True
