"""The lookup drills (sailvl.experiment.drills, the base's first text stages) answer what their descriptions say."""

import re

import pytest

from sailvl.experiment.drills import FORMS, drills
from sailvl.synth.formats import prompt_options
from sailvl.synth.scenes import COLOURS, SHAPES


def _described(task: str, description: str) -> str:
    """The value a drill's description gives for `task`."""
    if task == "digit":
        return re.search(r"digit (\d)", description).group(1)
    words = re.findall(r"\w+", description)
    colours, shapes = set(COLOURS), set(SHAPES)
    wanted = colours if task == "colour" else shapes
    # The object's colour, not a background's ("pale blue background" follows the shape).
    return next(w for w in words if w in wanted)


@pytest.mark.parametrize("form", FORMS)
def test_drills_answer_what_the_description_says(form):
    records = drills(120, seed=3, form=form)
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
            assert not set(re.findall(r"\w+", prompt.split("\n")[1])) & set(COLOURS)
    assert verdicts == {"Yes", "No"}
