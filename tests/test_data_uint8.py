"""uint8 tiles through the loader, normalised on the device: the same pixels and the same losses as float32 tiles."""

import torch

from sailvl.data.tiling import normalize_pixels, stack_tiles


def test_uint8_tiles_normalise_to_the_float_path_exactly():
    import numpy as np
    from PIL import Image

    from sailvl.bench.data import tiny_bench_processor

    processor = tiny_bench_processor()
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8))
    raw = processor.tile_image(image, 4, uint8=True)
    assert raw.dtype == torch.uint8 and raw.shape[1:] == (3, 112, 112)
    float_path = processor.tile_image(image, 4)
    torch.testing.assert_close(normalize_pixels(raw), float_path, rtol=0, atol=0)
    assert isinstance(stack_tiles([Image.new("RGB", (4, 4), (255, 0, 0))]), torch.Tensor)


def test_uint8_loader_gives_identical_losses(tmp_path):
    """Same stream with `uint8_pixels` on and off: identical batches after to_device, identical loss and grads."""
    from sailvl.bench.data import tiny_bench_processor, write_synthetic_mix
    from sailvl.data.loader import build_loader
    from sailvl.model import build_model
    from sailvl.train.step import to_device, token_loss_sum

    config = write_synthetic_mix(tmp_path, n=24).model_copy(update={"pack_buffer": 8, "max_tokens": 512})
    processor = tiny_bench_processor()
    raw = next(iter(build_loader(config, processor)))
    ref = next(iter(build_loader(config.model_copy(update={"uint8_pixels": False}), processor)))
    assert raw["pixel_values"].dtype == torch.uint8 and ref["pixel_values"].dtype == torch.float32
    assert raw["pixel_values"].shape == ref["pixel_values"].shape and raw["sample_ids"] == ref["sample_ids"]
    cpu = torch.device("cpu")
    a, b = to_device(raw, cpu, torch.float32), to_device(ref, cpu, torch.float32)
    torch.testing.assert_close(a["pixel_values"], b["pixel_values"], rtol=0, atol=0)
    losses = []
    for inputs in (a, b):
        model = build_model("tiny", seed=0, tokenizer=processor.tokenizer).train()
        loss = token_loss_sum(model, inputs)
        loss.backward()
        losses.append((loss.detach(), next(model.parameters()).grad.clone()))
    torch.testing.assert_close(losses[0][0], losses[1][0], rtol=0, atol=0)
    torch.testing.assert_close(losses[0][1], losses[1][1], rtol=0, atol=0)
