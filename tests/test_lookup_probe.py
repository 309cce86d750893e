"""The lookup probe's drills (scripts/lookup_probe.py) answer what their descriptions say, in every form."""

import importlib.util
import re
from pathlib import Path

import pytest

from sailvl.synth.formats import prompt_options

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "lookup_probe.py"
spec = importlib.util.spec_from_file_location("lookup_probe", SCRIPT)
probe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(probe)


def _described(task: str, description: str) -> str:
    """The value a drill's description gives for `task`."""
    if task == "digit":
        return re.search(r"digit (\d)", description).group(1)
    words = re.findall(r"\w+", description)
    colours, shapes = set(probe.COLOURS), set(probe.SHAPES)
    wanted = colours if task == "colour" else shapes
    # The object's colour, not a background's ("pale blue background" follows the shape).
    return next(w for w in words if w in wanted)


@pytest.mark.parametrize("form", probe.FORMS)
def test_drills_answer_what_the_description_says(form):
    records = probe.drills(120, seed=3, form=form)
    kinds = {(r["task"], r["format"]) for r in records}
    assert kinds == ({("colour", "mcq"), ("colour", "yesno")} if form.startswith("colour-") else
                     {(t, s) for t in ("colour", "shape", "digit") for s in ("mcq", "yesno")})  # fmt: skip
    verdicts = set()
    for r in records:
        prompt, answer = r["conversations"][0]["value"], r["conversations"][1]["value"]
        description = prompt.split("\n")[0]
        value = _described(r["task"], description)
        if r["format"] == "mcq":
            text, letter = answer.split()
            assert text == value and prompt_options(prompt)[letter] == value
        else:
            question = prompt.split("\n")[1]
            asked = re.findall(r"\w+", question)
            asked = asked[-4] if r["task"] == "shape" else asked[-1]
            assert answer == ("Yes" if asked == value else "No"), (prompt, answer)
            verdicts.add(answer)
        if form in ("predicate", "colour-predicate") and r["task"] == "colour":
            assert description.endswith(f" is {value}.")
        if form == "no-anchor" and r["task"] in ("shape", "digit") and r["format"] == "yesno":
            assert not set(re.findall(r"\w+", prompt.split("\n")[1])) & set(probe.COLOURS)
    assert verdicts == {"Yes", "No"}
