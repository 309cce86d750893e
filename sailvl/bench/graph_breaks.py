"""`sailvl bench train --explain`: torch._dynamo.explain over one ViT block, one decoder block (sdpa and
flex_attention with a packed BlockMask) and the BlockMask construction: the graph breaks that would keep
`parallel.compile` from compiling each whole."""

from __future__ import annotations

from transformers import InternVLConfig

from sailvl.model import get_preset_config
from sailvl.model.build import build_from_config
from sailvl.train.parallel import apply_liger_kernels
from sailvl.train.step import flex_block_mask

# A vocabulary this small keeps the 2B presets' one-block copies at a few hundred MB; blocks do not see it.
_EXPLAIN_VOCAB = 1024


def one_block_config(preset: str) -> InternVLConfig:
    """`preset`'s config with one ViT block and one decoder block (the real widths, heads, norms, MLP and
    attention classes) and a small vocabulary: what `torch.compile` sees per block, without building 2B weights."""
    config = get_preset_config(preset, vocab_size=_EXPLAIN_VOCAB, image_token_id=_EXPLAIN_VOCAB - 1)
    for sub in (config.vision_config, config.text_config):
        sub.num_hidden_layers = 1
        if getattr(sub, "layer_types", None):
            sub.layer_types = sub.layer_types[:1]
    return config


def explain_graph_breaks(preset: str = "tiny", liger: bool = False, device: str | None = None) -> dict:
    """Graphs and graph breaks (with reasons) per case, for one block of each tower of `preset` (random init,
    fp32; `one_block_config`), on `device` (default: CUDA when there is one, else CPU). `liger`: with the LLM's
    RMSNorm / SwiGLU / RoPE swapped for Liger's kernels first (`parallel.liger_kernels`; Triton, so CUDA).

    Forward only (no_grad: flex_attention has no CPU backward); AOTAutograd traces the backward from the same
    graph, so a break-free forward compiles whole. A case with one graph and no break compiles whole.
    """
    import torch._dynamo

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = build_from_config(one_block_config(preset), seed=0).eval()
    if liger:
        apply_liger_kernels(model)
    model = model.to(dev)
    text = model.model.language_model
    encoder = model.model.vision_tower.encoder
    vit_layers = getattr(encoder, "layer", None) or encoder.layers
    length = 128
    hidden = torch.randn(1, length, text.config.hidden_size, device=dev)
    half = torch.arange(length // 2, device=dev)
    position_ids = torch.cat([half, half])[None]  # two packed samples
    segments = (torch.arange(length, device=dev) >= length // 2).long()[None]
    vit_hidden = torch.randn(1, 65, model.model.vision_tower.config.hidden_size, device=dev)
    out = {
        "preset": preset,
        "device": str(dev),
        "liger": liger,
        "torch": torch.__version__,
        "vision": type(vit_layers[0]).__name__,
        "decoder": type(text.layers[0]).__name__,
    }
    with torch.no_grad():
        rope = text.rotary_emb(hidden, position_ids)
        block_mask = flex_block_mask(segments, dev)
        cases = {
            "decoder_block_sdpa": ("sdpa", text.layers[0], (hidden,), {"position_embeddings": rope}),
            "decoder_block_flex": (
                {"text_config": "flex_attention", "vision_config": "sdpa"},
                text.layers[0],
                (hidden,),
                {"position_embeddings": rope, "attention_mask": block_mask},
            ),
            "vit_block": ("sdpa", vit_layers[0], (vit_hidden,), {}),
            "block_mask": ("sdpa", lambda s: flex_block_mask(s, dev), (segments,), {}),
        }
        for name, (attn, fn, args, kwargs) in cases.items():
            model.set_attn_implementation(attn)
            torch._dynamo.reset()
            report = (
                torch._dynamo.explain(fn)(*args, position_ids=position_ids, **kwargs)
                if "decoder" in name
                else (torch._dynamo.explain(fn)(*args, **kwargs))
            )
            out[name] = {
                "graphs": report.graph_count,
                "graph_breaks": report.graph_break_count,
                "break_reasons": sorted({str(b.reason).splitlines()[0][:200] for b in report.break_reasons}),
            }
    torch._dynamo.reset()
    return out
