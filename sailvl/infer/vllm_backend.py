"""Optional vLLM backend for `sailvl.infer.generate` (GPU; imported only when asked for)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from sailvl.errors import SailvlError


@lru_cache(maxsize=1)
def _engine(model_dir: str, max_images: int):
    import vllm

    # vLLM serves transformers' InternVLForConditionalGeneration layout directly from the saved directory.
    return vllm.LLM(model=model_dir, trust_remote_code=False, limit_mm_per_prompt={"image": max_images})


def generate_vllm(
    model, processor, requests, max_new_tokens, do_sample, temperature, max_tiles, msac
) -> list[str]:
    """Answer `requests` with vLLM serving the directory `model` was loaded from.

    Prompts are rendered with sailvl's chat template, keeping one `<image>` placeholder per image for vLLM's
    own InternVL processor to expand, so vLLM's tiling applies: `max_tiles` and `msac` are not honoured.
    Untested in CI (no GPU / vLLM there); the transformers backend is the reference.
    """
    try:
        import vllm
    except ImportError:
        raise SailvlError("backend 'vllm' needs the vllm package (GPU only): pip install vllm") from None
    if msac:
        raise SailvlError("backend 'vllm' does not implement MSAC tiling; use the transformers backend")
    model_dir = getattr(model, "name_or_path", "") or ""
    if not Path(model_dir).is_dir():
        raise SailvlError("backend 'vllm' needs a model loaded from a directory (sailvl.model.load_model)")
    from sailvl.data.template import prepare_conversation
    from sailvl.infer.generate import as_image

    tokenizer = processor.tokenizer
    prompts = []
    for request in requests:
        prompt = request.prompt()
        conversation = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        images = [as_image(ref) for ref in request.images]
        messages = prepare_conversation(conversation, len(images), processor.system_prompt)
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        prompts.append(
            {"prompt": text, "multi_modal_data": {"image": images}} if images else {"prompt": text}
        )
    params = vllm.SamplingParams(
        max_tokens=max_new_tokens,
        temperature=temperature if do_sample else 0.0,
        stop_token_ids=[tokenizer.eos_token_id],
    )
    max_images = max([len(r.images) for r in requests] + [1])
    outputs = _engine(str(model_dir), max_images).generate(prompts, params)
    return [out.outputs[0].text for out in outputs]
