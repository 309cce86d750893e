"""Writes judge_answers.jsonl: judge answers written the way strong judge models answer (GPT-4o, Claude,
Qwen2.5-VL-72B, InternVL: terse, verbose, markdown, JSON, reasoning then a verdict, hedging, refusals, answers cut
off by max_new_tokens), each with the verdict a careful reader takes from it (None: the answer gives none), for
the yes/no alignment question and the 1-5 richness question. Written by hand, one answer per line below; run
`python tests/assets/build_judge_answers.py` after editing."""

from __future__ import annotations

import json
from pathlib import Path

# (style, answer, expected): expected True = aligned, False = not aligned, None = no verdict a reader can take.
YES_NO = [
    # The defect report's strings, verbatim.
    ("defect", "The caption is not correct.", False),
    ("defect", "It is not true that ...", False),
    ("defect", "Aligned: no", False),
    ("defect", '{"aligned": false}', False),
    # GPT-4o: an answer first, then a sentence of why.
    (
        "gpt-4o",
        "No, the caption is not accurate. The image shows a blue square on the left, not a red circle.",
        False,
    ),
    ("gpt-4o", "Yes, the caption accurately describes the image.", True),
    ("gpt-4o", "Yes. The image shows a red circle to the left of a blue square, exactly as described.", True),
    (
        "gpt-4o",
        "No. While the image does contain a circle, it is green rather than red, so the caption is incorrect.",
        False,
    ),
    ("gpt-4o", "The caption does not accurately describe the image. There are three stars, not two.", False),
    (
        "gpt-4o",
        "The caption accurately describes the image: a yellow triangle sits above two green stars.",
        True,
    ),
    ("gpt-4o", "No \u2014 the caption mentions a dog, but there is no dog in the image.", False),
    ("gpt-4o", "Yes, the caption is correct.", True),
    ("gpt-4o", "Not quite. The caption says two circles, but I count three.", False),
    (
        "gpt-4o",
        "Yes \u2014 every object mentioned (red circle, blue square, yellow star) is present with the right "
        "colors and positions.",
        True,
    ),
    ("gpt-4o", "The caption is inaccurate.", False),
    (
        "gpt-4o",
        "The caption correctly identifies the shapes but gets the colors wrong: the square is purple, not "
        "orange. So, no.",
        False,
    ),
    ("gpt-4o", "Based on the image, the description is correct.", True),
    ("gpt-4o", "The description doesn't match the image.", False),
    (
        "gpt-4o",
        "I don't think the caption is accurate; the triangle is pointing down, and it is black rather than "
        "white.",
        False,
    ),
    (
        "gpt-4o",
        "The caption is partially correct. The circle is red, but it is on the right side, not the left.",
        None,
    ),
    (
        "gpt-4o",
        "Yes, although the caption does not mention the background color, everything it says is correct.",
        True,
    ),
    ("gpt-4o", "Yes \u2014 nothing in the caption contradicts the image.", True),
    ("gpt-4o", "The caption is correct; it doesn't leave out anything important.", True),
    ("gpt-4o", "No, the image shows two squares instead of one.", False),
    # Claude: reasoning in paragraphs, a verdict at the end, hedges, refusals when no image arrives.
    (
        "claude",
        "Looking at the image, I can see a red circle positioned to the left of a blue square. The caption "
        "accurately describes this arrangement.\n\nYes, the caption is aligned with the image.",
        True,
    ),
    (
        "claude",
        "I need to compare the caption with the image carefully.\n\nThe caption states there are two green "
        "triangles above a yellow star. In the image, I see two green triangles, but they are positioned below the "
        "star, not above it.\n\nSo the spatial relationship is incorrect. **No**, the caption does not correctly "
        "describe the image.",
        False,
    ),
    (
        "claude",
        "The caption is mostly accurate, but there's one error: the square is purple, not orange. Since the "
        "caption contains a factual error about the image, I'd say it does not correctly describe the image.\n\nNo.",
        False,
    ),
    (
        "claude",
        "I'm not able to view images in this conversation, so I can't verify whether the caption is "
        "accurate.",
        None,
    ),
    (
        "claude",
        "I cannot see any image attached to your message. Could you please share the image you'd like me "
        "to evaluate?",
        None,
    ),
    (
        "claude",
        "Yes. The caption correctly describes the image \u2014 there are three blue circles arranged in a "
        "row on a white background.",
        True,
    ),
    (
        "claude",
        "The caption is accurate in its description of the shapes and their colors. However, it says the "
        "circles are in a row, whereas they appear to be arranged in a triangle formation. Given this discrepancy, "
        "my answer is no.",
        False,
    ),
    (
        "claude",
        "This is a bit ambiguous. The object could be either a dark blue or a purple square, which makes it "
        "hard to say definitively whether the caption is correct.",
        None,
    ),
    (
        "claude",
        "It's difficult to say with certainty. The shape on the left could be a circle or an oval.",
        None,
    ),
    ("claude", "Yes and no: the shapes are right but the colors are swapped.", None),
    (
        "claude",
        "I'd lean towards yes, but I'm not certain \u2014 the small shape in the corner might be a star or "
        "a cross.",
        None,
    ),
    (
        "claude",
        "The caption gets the count right (three circles) but they are not blue; they are green. So the "
        "caption is not aligned with the image.",
        False,
    ),
    (
        "claude",
        'Looking carefully: the caption says "a large purple square next to a small orange circle." The '
        "square is purple and large, and the orange circle is small and right next to it. This matches.",
        True,
    ),
    # Qwen2.5-VL-72B: terse, as asked.
    ("qwen2.5-vl-72b", "Yes", True),
    ("qwen2.5-vl-72b", "No", False),
    ("qwen2.5-vl-72b", "Yes.", True),
    ("qwen2.5-vl-72b", "No.", False),
    ("qwen2.5-vl-72b", "yes", True),
    ("qwen2.5-vl-72b", "The answer is yes.", True),
    ("qwen2.5-vl-72b", "The answer is no.", False),
    ("qwen2.5-vl-72b", "No, the caption is incorrect. The image shows a blue circle.", False),
    ("qwen2.5-vl-72b", "Yes, the caption correctly describes the image.", True),
    ("qwen2.5-vl-72b", "Yes, the image contains a red circle on the left of a blue square.", True),
    ("qwen2.5-vl-72b", "No. There is no star in the image.", False),
    ("qwen2.5-vl-72b", "The caption is correct.", True),
    ("qwen2.5-vl-72b", "Incorrect.", False),
    ("qwen2.5-vl-72b", "Correct.", True),
    ("qwen2.5-vl-72b", "False", False),
    ("qwen2.5-vl-72b", "True", True),
    ("qwen2.5-vl-72b", "No, it doesn't match.", False),
    ("qwen2.5-vl-72b", "Yes, it matches.", True),
    # InternVL: short sentences, "consistent" / "aligned" vocabulary.
    ("internvl", "Yes, the caption is consistent with the image.", True),
    ("internvl", "No, the caption is inconsistent with the image.", False),
    ("internvl", "The caption is not consistent with the image content.", False),
    ("internvl", "Aligned.", True),
    ("internvl", "Misaligned.", False),
    ("internvl", "Not aligned.", False),
    ("internvl", "The image and caption are aligned.", True),
    ("internvl", "The image and the caption do not match.", False),
    ("internvl", "no, the caption describes a cat but the image shows a dog", False),
    ("internvl", "Yes, it does.", True),
    ("internvl", "No, it does not.", False),
    ("internvl", "The caption isn't aligned with the image.", False),
    # JSON, bare or fenced, as asked for by a structured-output prompt.
    ("json", '{"aligned": true}', True),
    ("json", '```json\n{\n  "aligned": false,\n  "reason": "The square is green, not blue."\n}\n```', False),
    ("json", '```json\n{"alignment": "yes", "explanation": "All objects match."}\n```', True),
    ("json", '{"verdict": "misaligned", "confidence": 0.9}', False),
    ("json", '{"answer": "No"}', False),
    ("json", '{"answer": "Yes", "reason": "The caption is not wrong about anything."}', True),
    ("json", '{"correct": false, "errors": ["wrong color of the circle"]}', False),
    ("json", '{"verdict": "aligned", "score": 4}', True),
    (
        "json",
        'Here is my evaluation:\n```json\n{"aligned": "no", "issues": ["The caption says two stars; there is '
        'one."]}\n```',
        False,
    ),
    ("json", '{"result": "yes"}', True),
    ("json", '{"aligned": null, "reason": "image not visible"}', None),
    ("json", '{"label": "not aligned"}', False),
    ("json", "{aligned: no}", False),
    ("json", '{"Aligned": "Yes", "Reason": "Red circle left of blue square, as stated."}', True),
    # key: value lines.
    ("key-value", "Aligned: yes", True),
    ("key-value", "Answer: No", False),
    ("key-value", "Answer: Yes", True),
    ("key-value", "Alignment: Yes\nReason: The red circle and blue square are both present.", True),
    ("key-value", "Verdict: Misaligned. The caption claims a yellow star that isn't there.", False),
    ("key-value", "Correct: no", False),
    ("key-value", "Accurate: No - the circle is green.", False),
    ("key-value", "ITA: no", False),
    ("key-value", "Image-text alignment: YES", True),
    ("key-value", "Final answer: No", False),
    ("key-value", "Final Answer: Yes", True),
    ("key-value", "Matches image: false", False),
    ("key-value", "Hallucination: yes \u2014 the caption mentions a dog that is not present.", False),
    ("key-value", "Contains errors: no", True),
    ("key-value", "Answer: Yes. Final answer: No.", False),
    # Markdown.
    ("markdown", "**No.** The caption says the triangle is red, but it is clearly blue in the image.", False),
    ("markdown", "**Yes** \u2014 the caption is accurate.", True),
    (
        "markdown",
        "## Verdict\n\n**Not aligned.** The caption describes three circles but the image contains two.",
        False,
    ),
    (
        "markdown",
        "### Analysis\n- **Circle color**: correct (red)\n- **Square position**: incorrect (it is on the "
        "left, not the right)\n\n### Verdict\n**No**",
        False,
    ),
    ("markdown", "- Objects: \u2705\n- Colors: \u2705\n- Positions: \u2705\n\n**Answer: Yes**", True),
    ("markdown", "**Answer:** No", False),
    (
        "markdown",
        "1. The caption mentions a red circle \u2014 present \u2713\n2. It mentions a blue square \u2014 the "
        "square is actually green \u2717\n\nConclusion: the caption is **not** aligned with the image.",
        False,
    ),
    ("markdown", "> Yes, the caption matches the image.", True),
    ("markdown", "*Yes*", True),
    ("markdown", "__No__", False),
    (
        "markdown",
        "**Verdict: aligned** \u2705\n\nEvery shape, color and position in the caption is visible in the "
        "image.",
        True,
    ),
    # Chain of thought, then the verdict.
    (
        "cot",
        "Let me analyze the image step by step.\n1. The image shows a red circle in the upper left.\n2. There "
        "is a blue square in the middle.\n3. The caption says 'a red circle on the left of a blue square'.\n\nThe "
        "circle is to the left of the square, so the caption is correct.\n\nAnswer: Yes",
        True,
    ),
    (
        "cot",
        "First, the caption claims there are two green triangles. I see two green triangles. Second, it says "
        "they are above a yellow star. The star is actually above the triangles. Therefore, the caption is "
        "incorrect. Final answer: No.",
        False,
    ),
    (
        "cot",
        "The caption says 'a large purple square next to a small orange circle'. The square is indeed purple "
        "and large. The circle is orange and small. They are next to each other. Everything checks out, so yes.",
        True,
    ),
    (
        "cot",
        "Step 1: Identify objects \u2014 circle, square.\nStep 2: Check colors \u2014 circle is red (caption says"
        " red: correct), square is blue (caption says green: wrong).\nStep 3: Conclusion \u2014 the caption is not "
        "aligned.\n\nNo",
        False,
    ),
    (
        "cot",
        "<think>\nThe caption says three blue circles. I count three circles, all blue. They are in a row. So "
        "it matches.\n</think>\nYes",
        True,
    ),
    (
        "cot",
        "<think>The caption mentions a star, but I don't see one. Wait, there is a small yellow star in the "
        "corner. OK so it's present.</think>\n\nYes, the caption is accurate.",
        True,
    ),
    (
        "cot",
        "<think>\nThe image shows a green circle. The caption says red circle. That is wrong.\n</think>\n\nNo",
        False,
    ),
    (
        "cot",
        "At first glance the caption seems correct, but on closer inspection the square is dark green, not "
        "blue. So the answer is no.",
        False,
    ),
    (
        "cot",
        "Initially I thought no, but after checking again, the small star is there in the top right corner. "
        "The caption is correct: yes.",
        True,
    ),
    (
        "cot",
        "Reasoning: The caption mentions two stars but I see only one star. The colors are correct.\nAnswer: "
        "no",
        False,
    ),
    (
        "cot",
        "The caption accurately names the shapes. However, the position is wrong. Overall, the caption is not "
        "aligned with the image.",
        False,
    ),
    (
        "cot",
        "The red circle is present. The blue square is present. The yellow star is missing. Overall: "
        "misaligned.",
        False,
    ),
    (
        "cot",
        "Everything in the caption is correct except the number of circles (there are four, not three). "
        "Therefore the caption does not correctly describe the image.",
        False,
    ),
    (
        "cot",
        "The caption says the triangle is above the circle. In the image, the triangle is above the circle. "
        "The colors (yellow triangle, red circle) also match. Therefore, the caption is accurate.",
        True,
    ),
    (
        "cot",
        "Let's check each claim. Claim 1: 'two squares' - correct. Claim 2: 'both purple' - incorrect, one "
        "is orange. Since one claim is false, the caption is misaligned.\n\nFinal verdict: No",
        False,
    ),
    (
        "cot",
        "The circle is red, so this part is correct. The square, however, is green while the caption says blue. "
        "The caption is wrong.",
        False,
    ),
    (
        "cot",
        "The caption describes a red circle. Looking at the image, this part is correct. But the caption also "
        "says there is a blue square, and there is none. So, no, the caption is not correct.",
        False,
    ),
    # Negations, said many ways.
    ("negation", "The caption is not aligned with the image.", False),
    ("negation", "I would not say the caption is accurate.", False),
    ("negation", "The caption fails to describe the image correctly.", False),
    ("negation", "The caption cannot be considered correct, since the square is red.", False),
    ("negation", "Nope.", False),
    ("negation", "Nope, the triangle is yellow.", False),
    ("negation", "Yep.", True),
    ("negation", "Absolutely not.", False),
    ("negation", "Definitely not \u2014 there is no circle in the image.", False),
    ("negation", "Not at all.", False),
    ("negation", "Not really; the star is missing.", False),
    ("negation", "The caption is wrong.", False),
    ("negation", "Wrong.", False),
    ("negation", "The caption contains a hallucination: there is no yellow star.", False),
    ("negation", "The description is inaccurate because it says the circle is red.", False),
    ("negation", "The caption doesn't correctly describe the image.", False),
    ("negation", "The caption does not accurately describe the image.", False),
    ("negation", "The caption doesn't match the image: the circle is blue.", False),
    ("negation", "This caption is misaligned with the image.", False),
    ("negation", "The caption is not entirely accurate: the square is orange.", False),
    ("negation", "It is not true that the caption describes the image correctly.", False),
    ("negation", "The statement in the caption is false.", False),
    ("negation", "There are no errors in the caption; it is accurate.", True),
    ("negation", "I see no discrepancies between the caption and the image. Yes.", True),
    ("negation", "Nothing in the caption is wrong.", True),
    ("negation", "Not aligned: the caption names a square, the image has a circle.", False),
    ("negation", "There is no star in the image so the caption is incorrect.", False),
    ("negation", "Is the caption correct? No. The square is red.", False),
    # Hedges, contradictions and non-answers: no verdict to take.
    ("hedge", "Maybe.", None),
    ("hedge", "Possibly, but I'm not sure.", None),
    ("hedge", "It's hard to tell from this image.", None),
    ("hedge", "The image is too blurry to determine whether the caption is accurate.", None),
    ("hedge", "Partially.", None),
    ("hedge", "Somewhat.", None),
    ("hedge", "The caption is partially correct.", None),
    ("hedge", "Yes and no.", None),
    ("hedge", "I'm not sure whether the circle is red or orange.", None),
    ("hedge", "It depends on whether the shape counts as a square.", None),
    ("hedge", "Unclear.", None),
    ("hedge", "The caption seems mostly accurate.", None),
    ("hedge", "Yes. No wait, I am not sure.", None),
    ("hedge", "The caption is correct. The caption is incorrect.", None),
    ("hedge", "Yes\nNo", None),
    ("hedge", "Yes, the caption is wrong about the square.", None),
    ("hedge", "", None),
    ("hedge", "The image shows a red circle and a blue square.", None),
    ("hedge", "The caption mentions a red circle on the left of a blue square.", None),
    ("hedge", "Does this caption correctly describe the image?", None),
    # Refusals.
    ("refusal", "I cannot view images.", None),
    ("refusal", "I'm sorry, but I can't see the image you're referring to. Could you describe it?", None),
    (
        "refusal",
        "As an AI language model, I don't have the ability to view images, so I cannot determine whether "
        "the caption is correct.",
        None,
    ),
    (
        "refusal",
        "I'm unable to view the image, but based on the caption alone, it sounds plausible. Yes?",
        None,
    ),
    ("refusal", "No image was provided, so I can't evaluate the caption.", None),
    ("refusal", "I can't access the image. Please upload it again.", None),
    ("refusal", "Sorry, I can't help with that.", None),
    ("refusal", "I cannot view the image, so I cannot say whether it is correct. Answer: No", None),
    # Cut off by max_new_tokens.
    ("truncated", "The caption is not", None),
    ("truncated", "Yes, the caption correctly", True),
    ("truncated", "No, the caption says", False),
    ("truncated", "Looking at the image, the", None),
    ("truncated", "**Analysis**\n- The caption", None),
    # From a held-out check: 42 answers written after the parser; these were misread or are close to those.
    (
        "claude",
        "The caption is accurate except for the color of the square, which is red instead of blue.",
        False,
    ),
    ("gpt-4o", "Everything matches apart from the number of stars: there are three, not two.", False),
    ("gpt-4o", "Yes, mostly, though the shade of blue is a bit off.", None),
    ("claude", "The caption is largely accurate.", None),
    ("gpt-4o", "Unfortunately no. The caption describes two birds, but only one is visible.", False),
    ("gpt-4o", "Short answer: no.", False),
    ("claude", "I'm going to say no, because the triangle is missing.", False),
    ("json", '{"aligned": "false"}', False),
    ("key-value", "Label: misaligned", False),
    ("key-value", "Result: ALIGNED", True),
    ("refusal", "The image appears to be blank, so I cannot assess the caption.", None),
    ("internvl", "Incorrect - the circle is on the right.", False),
]

# (style, answer, expected score 1-5 or None).
SCORES = [
    ("defect", "Rating (1-5): 4", 4),
    ("defect", "On a scale of 1 to 5, I'd give it a 4.", 4),
    ("terse", "4", 4),
    ("terse", "5", 5),
    ("terse", "1", 1),
    ("terse", "3.", 3),
    ("terse", "Four.", 4),
    ("terse", "one", 1),
    ("terse", "Three.", 3),
    ("terse", "4/5", 4),
    ("terse", "5/5", 5),
    ("terse", "4 (good)", 4),
    ("terse", "4\n\nThe caption is detailed.", 4),
    ("terse", "2.0", 2),
    ("terse", "3 out of 5", 3),
    ("key-value", "Score: 3/5", 3),
    ("key-value", "Score: 4", 4),
    ("key-value", "Rating: 5", 5),
    ("key-value", "Richness: 2", 2),
    ("key-value", "VIR: 3", 3),
    ("key-value", "VIR score: 4/5", 4),
    ("key-value", "Score (1-5): 2", 2),
    ("key-value", "Rating [1-5]: 5", 5),
    ("key-value", "Richness (1\u20135): 3", 3),
    ("key-value", "Final answer: 2", 2),
    ("key-value", "score=4", 4),
    ("key-value", "Level 3", 3),
    ("key-value", "Rating - 1", 1),
    ("key-value", "Score: 4 (out of 5)", 4),
    ("key-value", "Rating: 3/5 \u2014 adequate.", 3),
    (
        "key-value",
        "Score: 5\n\nExplanation: The caption mentions all 3 shapes, all 3 colors and the layout.",
        5,
    ),
    (
        "key-value",
        "Score: 4. The caption covers most objects but misses the 2 small circles in the corner.",
        4,
    ),
    ("gpt-4o", "I rate this caption 2 out of 5.", 2),
    ("gpt-4o", "I'd give it a 3.", 3),
    ("gpt-4o", "I would give this caption a 5 \u2014 it mentions every object, color and position.", 5),
    ("gpt-4o", "I would rate the visual information richness as 4.", 4),
    ("gpt-4o", "The answer is 4.", 4),
    ("gpt-4o", "I'd say it's a solid 4 out of 5 \u2014 detailed but missing the background.", 4),
    ("gpt-4o", "Out of 5, I'd say 4.", 4),
    ("gpt-4o", "The caption is rich in detail. Score: 5 out of 5.", 5),
    (
        "claude",
        "The caption deserves a 2: it only mentions the circle and ignores the other three shapes.",
        2,
    ),
    (
        "claude",
        "On a scale from 1 (almost nothing) to 5 (every object and attribute), this caption is a 3.",
        3,
    ),
    (
        "claude",
        "A score of 5 would require every attribute to be described; this caption misses the colors, so I "
        "give it a 3.",
        3,
    ),
    ("claude", "This caption deserves the lowest score, 1, since it says nothing about the image.", 1),
    ("claude", "Between 3 and 4; I'll go with 4.", 4),
    ("claude", "I would give it a three.", 3),
    (
        "claude",
        "The caption describes the shapes but not their colors or positions. I'd put it at the middle of "
        "the scale: 3.",
        3,
    ),
    ("qwen2.5-vl-72b", "2 - the caption only names one of the four objects.", 2),
    ("qwen2.5-vl-72b", "I rate it 3 because it describes 2 shapes out of 4.", 3),
    ("internvl", "The visual information richness score is 4.", 4),
    ("internvl", "Rating: 2. The caption is too short.", 2),
    ("markdown", "**4**", 4),
    (
        "markdown",
        "**Score: 4/5**\n\nThe caption covers the red circle, the blue square and their positions, but "
        "omits the small yellow star.",
        4,
    ),
    ("markdown", "## Rating\n**3**\n\nThe caption mentions two of the four shapes.", 3),
    (
        "markdown",
        "### Evaluation\n- Objects mentioned: 2 of 4\n- Colors: correct\n- Positions: missing\n\n**Final "
        "score: 2**",
        2,
    ),
    ("markdown", "Richness: **3** (mentions shapes and colors, no positions)", 3),
    ("markdown", "My rating: \u2605\u2605\u2605\u2605\u2606 (4)", 4),
    ("json", '{"score": 4}', 4),
    ("json", '{"rating": 2, "reason": "Only mentions one object out of five."}', 2),
    ("json", '```json\n{"vir": 5, "explanation": "Every object and attribute is described."}\n```', 5),
    ("json", '{"score": "3/5"}', 3),
    ("json", '{"richness": 3, "alignment": "yes"}', 3),
    ("json", '{"verdict": "aligned", "score": 4}', 4),
    ("json", '{"score": 7}', None),
    ("json", '{"score": null}', None),
    (
        "cot",
        "The image contains four objects: a red circle, a blue square, a yellow star and a green triangle. The "
        "caption mentions the circle and the square with their colors, but not the star or the triangle. That is "
        "about half of the visual information. Score: 3",
        3,
    ),
    (
        "cot",
        "Let me count the details. The caption describes 5 objects? No \u2014 it describes 2 of the 5 objects "
        "in the image, with correct colors. I'd rate it a 2.",
        2,
    ),
    (
        "cot",
        "The caption is very detailed: it lists every shape, its color and its position. This is the highest "
        "level of richness. 5/5",
        5,
    ),
    (
        "cot",
        "<think>Caption mentions 3 shapes, image has 3 shapes, colors included, positions included. That's "
        "complete.</think>\n5",
        5,
    ),
    ("cot", "Reasoning: the caption names the objects but none of their attributes.\nScore: 2", 2),
    (
        "cot",
        "1. Objects: the caption names 2 of 3.\n2. Colors: given for both.\n3. Positions: not given.\n\nI'd "
        "give it a 3.",
        3,
    ),
    ("cot", "I'd give it a 4 at first, but it misses the star entirely. Final score: 3", 3),
    # No score to take.
    ("unclear", "3 or 4", None),
    ("unclear", "Somewhere between 2 and 3.", None),
    ("unclear", "3-4", None),
    ("unclear", "I'd give it a 3 or 4.", None),
    ("unclear", "3.5", None),
    ("unclear", "Score: 3.5/5", None),
    ("unclear", "N/A", None),
    ("unclear", "The caption is good.", None),
    ("unclear", "The caption mentions 3 objects.", None),
    ("unclear", "", None),
    ("unclear", "9", None),
    ("unclear", "Score: 0", None),
    ("unclear", "Score: 6", None),
    ("unclear", "1. The caption names the circle.\n2. It omits the colors.", None),
    ("other-scale", "10/10", None),
    ("other-scale", "8 out of 10", None),
    ("other-scale", "4 out of 10", None),
    ("other-scale", "Score: 7/10", None),
    ("other-scale", "On a scale of 1 to 10, I'd give it a 4.", None),
    ("refusal", "I cannot view the image, so I cannot rate the caption.", None),
    (
        "refusal",
        "I'm sorry, but I can't see the image. If you describe it, I can rate the caption from 1 to 5.",
        None,
    ),
    ("refusal", "As an AI, I am unable to see images; please provide a description.", None),
    ("truncated", "The caption describes", None),
    ("truncated", "Score:", None),
    # From the held-out check.
    ("gpt-4o", "I would assign a score of 2.", 2),
    ("claude", "It merits a 4.", 4),
    ("internvl", "The richness is low (2).", 2),
    ("claude", "Hmm, 3 or maybe 4.", None),
    ("gpt-4o", "I give this a 1; it says almost nothing.", 1),
]


def main() -> None:
    rows = [{"kind": "yes_no", "style": s, "text": t, "expected": e} for s, t, e in YES_NO]
    rows += [{"kind": "score", "style": s, "text": t, "expected": e} for s, t, e in SCORES]
    out = Path(__file__).with_name("judge_answers.jsonl")
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{out}: {len(YES_NO)} yes/no + {len(SCORES)} score answers")


if __name__ == "__main__":
    main()
