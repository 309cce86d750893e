"""One tiling and one ViT pass per image, however many prompts ask about it.

A judge scores a caption's likelihood and then asks for its richness about the same image; SFT scoring asks three
questions about one image. `VisionCache` keeps the vision tower's output (after pixel shuffle and projector: the
LLM-space image embeddings) of the last `capacity` images by object identity, and builds `inputs_embeds` for a
batch from them, so the second prompt about an image costs only its LLM tokens. Only the embeddings are kept (on
the model's device), not the tiles.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from PIL import Image


class VisionCache:
    """Image embeddings of recently seen images, keyed by the PIL object (the caller decodes each image once:
    `sailvl.curation.vlm.DecodedImages`) and the tiling settings."""

    def __init__(self, capacity: int = 64, vit_batch_tiles: int = 256):
        """`capacity`: images kept; `vit_batch_tiles`: tiles per vision-tower forward (bounds its activations)."""
        self.capacity, self.vit_batch_tiles = capacity, vit_batch_tiles
        self._embeds: OrderedDict[tuple, tuple[Image.Image, torch.Tensor]] = OrderedDict()
        self.vit_images = 0  # images that went through the vision tower (tests and benches read it)

    def encode(
        self, model, processor, images: list[list[Image.Image]], max_tiles: int | None, msac: bool
    ) -> list[list[torch.Tensor]]:
        """Per prompt, per image: LLM-space embeddings `[tiles x tokens per tile, hidden]` with the processor's
        tiling (the multi-image tile cap of each prompt applied). The images not cached are tiled and go through
        the vision tower together, in one batch."""
        keys = [[(id(im), processor.tile_limit(len(ims), max_tiles), msac) for im in ims] for ims in images]
        out = [
            [self._get(k, im) for k, im in zip(ks, ims, strict=True)]
            for ks, ims in zip(keys, images, strict=True)
        ]
        missing: dict[tuple, Image.Image] = {}
        for ks, ims, got in zip(keys, images, out, strict=True):
            for key, image, embeds in zip(ks, ims, got, strict=True):
                if embeds is None:
                    missing.setdefault(key, image)
        if not missing:
            return out  # type: ignore[return-value]
        device = next(model.parameters()).device
        computed: dict[tuple, torch.Tensor] = {}
        group: list[tuple[tuple, torch.Tensor]] = []  # tiled lazily: at most one ViT batch of tiles in memory
        for i, (key, image) in enumerate(missing.items()):
            group.append((key, processor.tile_image(image, key[1], msac)))
            if sum(len(t) for _, t in group) < self.vit_batch_tiles and i + 1 < len(missing):
                continue
            pixels = torch.cat([t for _, t in group]).to(device=device, dtype=model.dtype)
            features, start = image_features(model, pixels), 0
            for k, tiles in group:
                computed[k] = features[start : start + len(tiles)].reshape(-1, features.shape[-1])
                start += len(tiles)
                self._put(k, missing[k], computed[k])
            group = []
        self.vit_images += len(missing)
        return [[e if e is not None else computed[k] for k, e in zip(ks, got, strict=True)]
                for ks, got in zip(keys, out, strict=True)]  # fmt: skip

    def _get(self, key: tuple, image: Image.Image) -> torch.Tensor | None:
        hit = self._embeds.get(key)
        if hit is None or hit[0] is not image:
            return None
        self._embeds.move_to_end(key)
        return hit[1]

    def _put(self, key: tuple, image: Image.Image, embeds: torch.Tensor) -> None:
        self._embeds[key] = (
            image,
            embeds,
        )  # the image is held, so its id cannot be reused while the entry lives
        while len(self._embeds) > self.capacity:
            self._embeds.popitem(last=False)


def tile_placeholders(embeds: list[list[torch.Tensor]], tokens_per_tile: int) -> list[list[torch.Tensor]]:
    """Per prompt, per image: an empty `[tiles, 0]` tensor standing in for the image's tiles, so the processor
    lays out the image tokens (`SailVLProcessor.encode_prompts` takes pre-tiled images) without pixels."""
    return [[torch.empty(len(e) // tokens_per_tile, 0) for e in es] for es in embeds]


def image_features(model, pixel_values: torch.Tensor) -> torch.Tensor:
    """`[tiles, tokens per tile, hidden]` image embeddings, as the model's own forward computes them."""
    config = model.config
    out = model.get_image_features(
        pixel_values=pixel_values,
        vision_feature_layer=config.vision_feature_layer,
        vision_feature_select_strategy=config.vision_feature_select_strategy,
    )
    return getattr(out, "pooler_output", out)  # a model output in recent transformers, a tensor before


def inputs_embeds(model, input_ids: torch.Tensor, image_embeds: list[torch.Tensor]) -> torch.Tensor:
    """Token embeddings of `input_ids` with the image-context positions (in order) replaced by `image_embeds`."""
    embeds = model.get_input_embeddings()(input_ids)
    if image_embeds:
        mask = input_ids == model.config.image_token_id
        features = torch.cat(image_embeds).to(embeds.device, embeds.dtype)
        if int(mask.sum()) != len(features):
            raise ValueError(f"{int(mask.sum())} image-context tokens but {len(features)} image embeddings")
        embeds = embeds.masked_scatter(mask[..., None], features)
    return embeds
