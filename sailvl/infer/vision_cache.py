"""One tiling and one ViT pass per image, however many prompts ask about it.

A judge scores a caption's likelihood and then asks for its richness about the same image; SFT scoring asks three
questions about one image. `VisionCache` keeps the tiles and the vision tower's output (after pixel shuffle and
projector: the LLM-space image embeddings) of the last `capacity` images by object identity, and builds
`inputs_embeds` for a batch from them, so the second prompt about an image costs only its LLM tokens.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from PIL import Image


class VisionCache:
    """Tiles and image embeddings of recently seen images, keyed by the PIL object (the caller decodes each image
    once: `sailvl.curation.vlm.DecodedImages`) and the tiling settings."""

    def __init__(self, capacity: int = 64):
        self.capacity = capacity
        self._tiles: OrderedDict[tuple, tuple[Image.Image, torch.Tensor]] = OrderedDict()
        self._embeds: OrderedDict[tuple, tuple[Image.Image, torch.Tensor]] = OrderedDict()
        self.vit_images = 0  # images that went through the vision tower (tests and benches read it)

    def _get(self, store: OrderedDict, key: tuple, image: Image.Image) -> torch.Tensor | None:
        hit = store.get(key)
        if hit is None or hit[0] is not image:
            return None
        store.move_to_end(key)
        return hit[1]

    def _put(self, store: OrderedDict, key: tuple, image: Image.Image, value: torch.Tensor) -> None:
        store[key] = (image, value)  # the image is held, so its id cannot be reused while the entry lives
        if len(store) > self.capacity:
            store.popitem(last=False)

    def tiles(
        self, processor, images: list[Image.Image], max_tiles: int | None, msac: bool
    ) -> list[torch.Tensor]:
        """Normalised tiles of each image of one prompt, with the processor's multi-image tile limit."""
        limit = processor.tile_limit(len(images), max_tiles)
        out = []
        for image in images:
            key = (id(image), limit, msac)
            tiles = self._get(self._tiles, key, image)
            if tiles is None:
                tiles = processor.tile_image(image, limit, msac)
                self._put(self._tiles, key, image, tiles)
            out.append(tiles)
        return out

    def embeds(self, model, images: list[Image.Image], tiles: list[torch.Tensor]) -> list[torch.Tensor]:
        """LLM-space embeddings `[tiles x tokens per tile, hidden]` of each image; the images not cached go
        through the vision tower together, in one batch."""
        keys = [(id(image), len(t), t.data_ptr()) for image, t in zip(images, tiles, strict=True)]
        out: list[torch.Tensor | None] = [
            self._get(self._embeds, k, im) for k, im in zip(keys, images, strict=True)
        ]
        missing = [i for i, e in enumerate(out) if e is None]
        if missing:
            device = next(model.parameters()).device
            pixels = torch.cat([tiles[i] for i in missing]).to(device=device, dtype=model.dtype)
            features = image_features(model, pixels)
            start = 0
            for i in missing:
                n = len(tiles[i])
                out[i] = features[start : start + n].reshape(-1, features.shape[-1])
                start += n
                self._put(self._embeds, keys[i], images[i], out[i])
            self.vit_images += len(missing)
        return out  # type: ignore[return-value]


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
