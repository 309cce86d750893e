"""Checkpoint conversion between the released SAIL-VL remote-code layout (`sailvl-remote`) and HF (`hf`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from sailvl.config.constants import IMAGENET_MEAN, IMAGENET_STD, IMG_CONTEXT, RELEASE_FILE, RELEASE_KEY
from sailvl.errors import SailvlError
from sailvl.model.convert_config import hf_config_to_remote, remote_config_to_hf
from sailvl.model.convert_keys import hf_to_remote, remote_to_hf
from sailvl.model.families import Family
from sailvl.model.loading import MODEL_TYPES, save_model
from sailvl.model.presets import config_from_dict

FORMATS = ("sailvl-remote", "hf")
# Files that describe weights or code; everything else (tokenizer, chat template, processor) is copied.
_NOT_COPIED = {"config.json", "model.safetensors.index.json"}
# Files sailvl's processor writes into an HF directory. The release's own (if any) are kept verbatim in
# RELEASE_FILE and restored on the way back; ones the release did not have are removed from its layout.
_PROCESSOR_FILES = (
    "preprocessor_config.json",
    "processor_config.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "sailvl_processor.json",
)
_IMAGE_PROCESSOR = "preprocessor_config.json"
_RELEASED_HEAD = "language_model.lm_head.weight"
_RELEASED_EMBED = "language_model.model.embed_tokens.weight"


def _read_state(src: Path) -> dict[str, torch.Tensor]:
    files = sorted(src.glob("*.safetensors"))
    if not files:
        raise SailvlError(f"{src} has no .safetensors weights (other formats are not read)")
    state: dict[str, torch.Tensor] = {}
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():
                state[key] = handle.get_tensor(key)
    return state


# transformers saves InternVL in the legacy hub layout and loads both; normalise to the runtime names.
_HF_DISK_PREFIXES = (
    ("vision_tower.", "model.vision_tower."),
    ("multi_modal_projector.", "model.multi_modal_projector."),
    ("language_model.model.", "model.language_model."),
    ("language_model.lm_head.", "lm_head."),
)


def _hf_runtime_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, tensor in state.items():
        for disk, runtime in _HF_DISK_PREFIXES:
            if key.startswith(disk):
                key = runtime + key[len(disk) :]
                break
        out[key] = tensor
    return out


def _save_hf(config: dict, state: dict[str, torch.Tensor], dst: Path) -> None:
    """Write an HF directory through transformers itself, so the file layout is exactly what it saves."""
    from transformers import InternVLForConditionalGeneration

    hf_config = config_from_dict(config)
    with torch.device("meta"):
        model = InternVLForConditionalGeneration(hf_config)
    try:
        model.load_state_dict(state, strict=not hf_config.tie_word_embeddings, assign=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise SailvlError(f"converted weights do not fit the converted config: {detail}") from None
    if hf_config.tie_word_embeddings:
        model.lm_head.weight = model.model.language_model.embed_tokens.weight
    missing = [n for n, p in model.named_parameters() if p.is_meta]
    if missing:
        raise SailvlError(f"converted checkpoint lacks {len(missing)} weights, e.g. {missing[0]}")
    save_model(model, dst)


def tokenizer_image_token_id(src: Path) -> int | None:
    """The id of `<IMG_CONTEXT>` in the tokenizer files of `src` (tokenizer_config.json's
    added_tokens_decoder, tokenizer.json's added_tokens, or a slow tokenizer's added_tokens.json), or None."""
    config_file, tokenizer_file = src / "tokenizer_config.json", src / "tokenizer.json"
    if config_file.is_file():
        decoder = json.loads(config_file.read_text()).get("added_tokens_decoder") or {}
        for token_id, token in decoder.items():
            if token.get("content") == IMG_CONTEXT:
                return int(token_id)
    if tokenizer_file.is_file():
        for token in json.loads(tokenizer_file.read_text()).get("added_tokens") or []:
            if token.get("content") == IMG_CONTEXT:
                return int(token["id"])
    added = _read_json(src / "added_tokens.json") or {}
    return int(added[IMG_CONTEXT]) if IMG_CONTEXT in added else None


def _check_formats(src: Path, dst: Path, src_format: str, dst_format: str) -> None:
    for name, fmt in (("--from", src_format), ("--to", dst_format)):
        if fmt not in FORMATS:
            raise SailvlError(
                f"{name} {fmt!r} is not a checkpoint format; choose one of {', '.join(FORMATS)}"
            )
    if src_format == dst_format:
        raise SailvlError(f"source and destination formats are both {src_format!r}; nothing to convert")
    if not src.is_dir() or not (src / "config.json").is_file():
        raise SailvlError(f"model directory {src} does not exist or has no config.json")
    if dst.resolve() == src.resolve():
        raise SailvlError("the destination directory must differ from the source")


def _image_token_id(src: Path, config: dict) -> int | None:
    """`<IMG_CONTEXT>`'s id: the tokenizer's; a config value that disagrees with it raises (a Qwen2.5 id in a
    Qwen3 release would point at `<think>`)."""
    from_tokenizer = tokenizer_image_token_id(src)
    stored = config.get("img_context_token_id")
    if from_tokenizer is not None and stored is not None and int(stored) != from_tokenizer:
        raise SailvlError(
            f"config.json's img_context_token_id {stored} is not the tokenizer's {IMG_CONTEXT} ({from_tokenizer})"
        )
    return from_tokenizer


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _release_files(src: Path, family: Family) -> dict:
    """What RELEASE_FILE keeps of a release: its file names and the text of the files sailvl's processor
    would overwrite."""
    return {
        "family": family.name,
        "file_names": sorted(item.name for item in src.iterdir() if item.is_file()),
        "files": {name: (src / name).read_text() for name in _PROCESSOR_FILES if (src / name).is_file()},
    }


def _from_remote(src: Path, config: dict, state: dict) -> tuple[Family, dict, dict, dict]:
    if config.get("model_type") in MODEL_TYPES:
        raise SailvlError(
            f"{src} is already in the hf layout (model_type {config['model_type']!r}); use --from hf"
        )
    family, new_config = remote_config_to_hf(config, _image_token_id(src, config))
    new_state = remote_to_hf(state, family.key_layout)
    if new_config["tie_word_embeddings"]:
        new_state.pop("lm_head.weight", None)
    new_config[RELEASE_KEY] = {
        "family": family.name,
        "config": config,
        "stored_tied_head": _RELEASED_HEAD in state,
    }
    return family, new_config, new_state, _release_files(src, family)


def _from_hf(src: Path, config: dict, state: dict, tiles: dict) -> tuple[Family, dict, dict, dict | None]:
    if config.get("model_type") not in MODEL_TYPES:
        raise SailvlError(
            f"{src} holds a {config.get('model_type')!r} model, expected an HF 'internvl' model"
        )
    record = config.get(RELEASE_KEY)
    family, new_config = hf_config_to_remote(config, record["config"] if record else None, tiles)
    new_state = hf_to_remote(_hf_runtime_names(state), family.key_layout)
    stores_head = record["stored_tied_head"] if record else family.stores_tied_head
    if new_config.get("tie_word_embeddings") and stores_head and _RELEASED_HEAD not in new_state:
        # The release saves the tied head next to the embedding; its loader expects both.
        new_state[_RELEASED_HEAD] = new_state[_RELEASED_EMBED].clone()
    return family, new_config, new_state, _read_json(src / RELEASE_FILE)


def _released_image_processor(family: Family, config: dict, stored: str | None, tiles: dict) -> str | None:
    """The release's preprocessor_config.json text, its tile count and MSAC switch set from the processor's
    settings (unchanged text when they agree); None for a family whose releases ship none (SAIL-VL 1.x)."""
    if stored is None and family.name != "sail-vl2":
        return None
    data = (
        json.loads(stored)
        if stored is not None
        else {
            "image_processor_type": "SAILVLImageProcessor",
            "image_size": config["force_image_size"],
            "patch_size": config["vision_config"]["patch_size"],
            "image_mean": list(IMAGENET_MEAN),
            "image_std": list(IMAGENET_STD),
            "max_dynamic_patch": 10,
            "use_msac": False,
        }
    )
    changed = stored is None
    for key, setting in (("max_dynamic_patch", "max_tiles"), ("use_msac", "use_msac")):
        if setting in tiles and data.get(key) != tiles[setting]:
            data[key], changed = tiles[setting], True
    return json.dumps(data, indent=2) + "\n" if changed else stored


def _write_remote(dst: Path, family: Family, config: dict, state: dict, release: dict | None, tiles: dict):
    (dst / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    tensors = {k: v.contiguous() for k, v in state.items()}
    save_file(tensors, str(dst / "model.safetensors"), metadata={"format": "pt"})
    stored = dict((release or {}).get("files") or {})
    image = _released_image_processor(family, config, stored.pop(_IMAGE_PROCESSOR, None), tiles)
    if image is not None:
        stored[_IMAGE_PROCESSOR] = image
    if release is not None:
        released = set(release["file_names"])
        for name in (*_PROCESSOR_FILES, RELEASE_FILE, "generation_config.json"):
            if name not in released and name not in stored and (dst / name).is_file():
                (dst / name).unlink()
    for name, text in stored.items():
        (dst / name).write_text(text)


def _copy_side_files(src: Path, dst: Path) -> None:
    for item in src.iterdir():
        if (
            item.is_file()
            and item.name not in _NOT_COPIED
            and item.suffix not in (".safetensors", ".py", ".bin")
        ):
            shutil.copy2(item, dst / item.name)


def convert_checkpoint(
    src: str | Path, dst: str | Path, src_format: str, dst_format: str, tiles: dict | None = None
) -> Path:
    """Convert the model directory `src` (format `src_format`) into `dst` (format `dst_format`).

    Every released family is read (`sailvl.model.families`): weights renamed (fused InternViT / AIMv2 /
    SAILViT qkv split or merged, position table reshaped), the config translated, the `<IMG_CONTEXT>` id taken
    from the tokenizer, other files copied. `--to hf` also keeps the released config.json (RELEASE_KEY in the
    new config) and tokenizer / processor files (RELEASE_FILE), from which `--to sailvl-remote` restores the
    release exactly; `tiles` (the processor's
    `template`, `min_tiles`, `max_tiles`, `use_thumbnail`, `use_msac`) update it. Remote code is never run.
    """
    src, dst = Path(src), Path(dst)
    _check_formats(src, dst, src_format, dst_format)
    config = json.loads((src / "config.json").read_text())
    state = _read_state(src)
    tiles = tiles or {}
    try:
        if src_format == "sailvl-remote":
            family, new_config, new_state, release = _from_remote(src, config, state)
        else:
            family, new_config, new_state, release = _from_hf(src, config, state, tiles)
    except (KeyError, ValueError) as exc:
        if isinstance(exc, SailvlError):
            raise
        raise SailvlError(f"cannot convert {src}: {exc}") from None
    dst.mkdir(parents=True, exist_ok=True)
    if dst_format == "hf":
        _save_hf(new_config, new_state, dst)
    # Copied before the release files are restored, after the HF save so the source's generation_config.json
    # wins over the default transformers writes.
    _copy_side_files(src, dst)
    if dst_format == "hf":
        (dst / RELEASE_FILE).write_text(json.dumps(release, indent=2, ensure_ascii=False) + "\n")
    else:
        _write_remote(dst, family, new_config, new_state, release, tiles)
    return dst
