"""The bad-input corpus: each broken or odd image/caption gets its expected reason or fix, and nothing crashes."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from _curation_helpers import make_pipeline, png_bomb, png_bytes, random_image
from PIL import Image

from sailvl.curation.executors import LocalExecutor
from sailvl.curation.lineage import check_lineage, iter_lineage, read_kept


def _jpeg(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    good = random_image(1, 64)
    files: dict[str, bytes] = {}
    files["good.png"] = png_bytes(good)
    files["truncated.jpg"] = _jpeg(random_image(2, 96))[:-400]
    files["empty.jpg"] = b""
    files["text.jpg"] = b"this is not an image, just some text\n" * 4
    files["bomb.png"] = png_bomb(20000, 20000)
    files["cmyk.jpg"] = _jpeg(random_image(3, 64).convert("CMYK"))
    arr16 = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    files["gray16.png"] = png_bytes(Image.fromarray(arr16))
    pal = random_image(4, 64).convert("P", palette=Image.ADAPTIVE, colors=16)
    pal.info["transparency"] = 0
    buf = io.BytesIO()
    pal.save(buf, format="PNG", transparency=0)
    files["palette_alpha.png"] = buf.getvalue()
    wide = random_image(5, 64).resize((80, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    files["rotated.jpg"] = _jpeg(wide, exif=exif)
    files["strip.png"] = png_bytes(Image.new("RGB", (1000, 1), (10, 20, 30)))
    files["copy_of_good.png"] = files["good.png"]
    for name, data in files.items():
        (root / name).write_bytes(data)
    caption = "a small red circle left of a big blue square"
    records = [(name.split(".")[0], name, caption) for name in files]
    records += [("no_file", "missing.png", caption), ("empty_caption", "good2.png", "   ")]
    records += [("garbage_caption", "good3.png", "@@## $$%% ^^&& **(( ))__ ++== ~~``")]
    records += [("loop_caption", "good4.png", "the cat the cat the cat the cat the cat the cat the cat")]
    for k in (2, 3, 4):
        (root / f"good{k}.png").write_bytes(png_bytes(random_image(10 + k, 64)))
    lines = [
        json.dumps(
            {
                "id": rid,
                "image": name,
                "conversations": [
                    {"from": "human", "value": "<image>\nDescribe."},
                    {"from": "gpt", "value": cap},
                ],
            }
        )
        for rid, name, cap in records
    ]
    lines.insert(3, "{not json at all")
    (root / "data.jsonl").write_text("\n".join(lines) + "\n")
    steps = [
        {"type": "image_checks", "min_side": 16, "max_aspect_ratio": 8, "max_pixels": 50_000_000},
        {"type": "text_checks", "min_words": 3},
        {"type": "dedup", "method": "exact"},
    ]
    cfg = make_pipeline(root / "data.jsonl", root / "run", steps, records_per_shard=4)
    LocalExecutor(cfg).run()
    fates = {row["id"]: row for row in iter_lineage(root / "run")}
    kept = {s.id: s for s in read_kept(root / "run")}
    return root, fates, kept


EXPECTED_REJECTS = {
    "truncated": "image_truncated",
    "empty": "image_empty",
    "text": "image_unidentified",
    "bomb": "image_too_many_pixels",
    "strip": "image_too_small",
    "copy_of_good": "exact_duplicate",
    "no_file": "image_missing",
    "empty_caption": "text_empty",
    "garbage_caption": "text_garbage",
    "loop_caption": "text_repetitive",
}


@pytest.mark.parametrize("rid,reason", sorted(EXPECTED_REJECTS.items()))
def test_bad_record_gets_expected_reason(corpus, rid, reason):
    _, fates, _ = corpus
    assert fates[rid]["status"] == "rejected"
    assert fates[rid]["reason"] == reason


def test_unparseable_line_is_rejected_at_read(corpus):
    _, fates, _ = corpus
    read_rejects = [row for row in fates.values() if row.get("step") == "read"]
    assert len(read_rejects) == 1 and read_rejects[0]["reason"] == "bad_json"


@pytest.mark.parametrize(
    "rid,fix",
    [
        ("cmyk", "cmyk->rgb"),
        ("gray16", "16bit->8bit"),
        ("palette_alpha", "alpha->white"),
        ("rotated", "exif_rotate"),
    ],
)
def test_convertible_images_are_fixed_and_kept(corpus, rid, fix):
    _, fates, kept = corpus
    assert fates[rid]["status"] == "kept"
    sample = kept[rid]
    assert fix in sample.metadata["image_fixes"]
    img = Image.open(io.BytesIO(sample.images[0]))
    assert img.mode == "RGB"
    if rid == "rotated":
        assert img.size == (40, 80)  # the 80x40 landscape is upright after applying orientation 6
    if rid == "gray16":
        arr = np.asarray(img)
        assert arr.min() < 5 and arr.max() > 250  # scaled from 16 bits, not clipped to white


def test_good_image_kept_untouched_and_lineage_complete(corpus):
    root, fates, kept = corpus
    assert fates["good"]["status"] == "kept" and isinstance(kept["good"].images[0], str)
    assert "image_fixes" not in kept["good"].metadata
    report = check_lineage(root / "run")
    assert (
        report.ok and report.kept + report.rejected == len(fates) == 16
    )  # 11 files + 4 records + 1 bad line
