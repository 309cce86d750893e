"""LLM judges for eval: text-judge builders (OpenAI-compatible API, local model directory) and the MMVet /
MathVista judging with VLMEvalKit's prompts, retries and post-processing (ms-vlmeval 0.0.20,
vlmeval/dataset/utils/mmvet.py and mathvista.py)."""

from __future__ import annotations

import ast
import logging
import os
import string
from dataclasses import dataclass, field
from pathlib import Path

from sailvl.errors import SailvlError
from sailvl.eval.matching import VLMEVALKIT_VERSION, infer_option
from sailvl.eval.tsv import BenchItem

log = logging.getLogger(__name__)

# A judge (`sailvl.eval.matching.TextJudge`) takes the prompt text and returns the reply text. The judges built
# here also accept `temperature=` and `max_tokens=` keywords, which VLMEvalKit's retries use.

# VLMEvalKit's OpenAI wrapper answers this after its own retries fail; MathVista's judging checks for it.
FAIL_MSG = "Failed to obtain answer via API."
JUDGE_RETRIES = 5  # MMVet_auxeval / MathVista_auxeval: 5 tries at temperature 0, 0.5, 1.0, ...
MMVET_MAX_TOKENS = 3  # build_judge(max_tokens=3) in MMVet.evaluate
MATHVISTA_MAX_TOKENS = 128  # build_judge(max_tokens=128) in MathVista.evaluate_heuristic
DEFAULT_MAX_TOKENS = 128


def vlmevalkit_version() -> str:
    """The VLMEvalKit release whose scoring rules sailvl follows, as recorded in results.json."""
    return f"ms-vlmeval {VLMEVALKIT_VERSION}"


@dataclass
class OpenAIJudge:
    """A text judge behind an OpenAI-compatible chat-completions API (OpenAI, `vllm serve`, `sailvl serve`).

    The key comes from `OPENAI_API_KEY` (any string for a local server). An API error that survives the
    client's retries is answered with FAIL_MSG, as VLMEvalKit's wrapper does, so a long eval goes on."""

    model: str
    base_url: str | None = None
    seed: int = 0
    timeout_s: float = 120.0
    max_retries: int = 3
    _client: object = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return f"openai:{self.model}" + (f"@{self.base_url}" if self.base_url else "")

    def client(self):
        if self._client is None:
            try:
                import openai
            except ImportError:
                raise SailvlError(
                    "--judge openai:... needs the openai package: pip install 'sailvl[serve]'"
                ) from None
            key = os.environ.get("OPENAI_API_KEY") or ("sailvl-local" if self.base_url else None)
            if key is None:
                raise SailvlError("--judge openai:MODEL needs OPENAI_API_KEY set (or a @BASE_URL server)")
            self._client = openai.OpenAI(
                api_key=key, base_url=self.base_url, timeout=self.timeout_s, max_retries=self.max_retries
            )
        return self._client

    def __call__(self, prompt: str, temperature: float = 0.0, max_tokens: int = DEFAULT_MAX_TOKENS) -> str:
        import openai

        try:
            reply = self.client().chat.completions.create(
                model=self.model,
                messages=[{"role": "user", "content": prompt}],
                temperature=temperature,
                max_tokens=max_tokens,
                seed=self.seed,
            )
        except openai.OpenAIError as err:
            log.warning("judge %s failed: %s", self.name, err)
            return FAIL_MSG
        return (reply.choices[0].message.content or "").strip()


@dataclass
class LocalJudge:
    """A text judge answered by a sailvl/transformers model directory, loaded on first use (so ranks that
    never judge under sharded eval never load it)."""

    model_dir: str
    device: str = "cpu"
    seed: int = 0
    _loaded: tuple | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return str(self.model_dir)

    def __call__(self, prompt: str, temperature: float = 0.0, max_tokens: int = DEFAULT_MAX_TOKENS) -> str:
        import torch

        # Local imports: transformers (through sailvl.model) would add seconds to every `import sailvl.eval`
        # (scaling fits, scoring prediction files), and only a local judge needs a model.
        from sailvl.data.processor import SailVLProcessor
        from sailvl.infer import GenRequest, generate
        from sailvl.model import load_model

        if self._loaded is None:
            self._loaded = (
                load_model(self.model_dir, device=self.device),
                SailVLProcessor.from_pretrained(self.model_dir),
            )
        # Sampled retries are reproducible (seeded per call) without reseeding the caller's RNG: generate samples
        # from the global generators, and manual_seed reseeds every GPU too, so all of them are forked.
        with torch.random.fork_rng(devices=range(torch.cuda.device_count()), device_type="cuda"):
            torch.manual_seed(self.seed)
            reply = generate(
                *self._loaded,
                [GenRequest(images=[], question=prompt)],
                max_new_tokens=max_tokens,
                do_sample=temperature > 0,
                temperature=temperature if temperature > 0 else 1.0,
            )[0]
        return reply.strip()


def parse_judge_spec(spec: str) -> tuple[str, str | None]:
    """`openai:MODEL[@BASE_URL]` -> ("MODEL", BASE_URL or None); raises for a malformed spec."""
    if not spec.startswith("openai:"):
        raise SailvlError(f"--judge {spec!r} is not openai:MODEL[@BASE_URL]")
    model, _, base_url = spec[len("openai:") :].partition("@")
    if not model:
        raise SailvlError(f"--judge {spec!r} names no model; expected openai:MODEL[@BASE_URL]")
    return model, base_url or None


def build_judge(spec: str, device: str = "cpu", seed: int = 0) -> OpenAIJudge | LocalJudge:
    """A judge from `--judge`: `openai:MODEL[@BASE_URL]` or a model directory (loaded on `device`)."""
    if spec.startswith("openai:"):
        model, base_url = parse_judge_spec(spec)
        return OpenAIJudge(model, base_url, seed=seed)
    if not Path(spec).is_dir():
        raise SailvlError(f"--judge {spec} is neither openai:MODEL[@BASE_URL] nor a model directory")
    return LocalJudge(str(spec), device, seed)


def judge_name(judge) -> str | None:
    """What results.json records for `judge`."""
    if judge is None:
        return None
    return str(getattr(judge, "name", None) or getattr(judge, "__qualname__", None) or type(judge).__name__)


def _ask(judge, prompt: str, attempt: int, max_tokens: int) -> str:
    """One try; VLMEvalKit raises the temperature by 0.5 per retry."""
    return str(judge(prompt, temperature=attempt * 0.5, max_tokens=max_tokens))


# ---- MMVet ---------------------------------------------------------------------------------------

# The prompt text must stay byte-identical to VLMEvalKit's build_mmvet_gpt4_prompt for comparability.
MMVET_PROMPT = """
Compare the ground truth and prediction from AI models, to give a correctness score for the prediction.
<AND> in the ground truth means it is totally right
only when all elements in the ground truth are present in the prediction,
and <OR> means it is totally right when any one element in the ground truth is present in the prediction.
The correctness score is 0.0 (totally wrong), 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, or 1.0 (totally right).
Just complete the last space of the correctness score.

Question | Ground truth | Prediction | Correctness
--- | --- | --- | ---
What is x in the equation? | -1 <AND> -5 | x = 3 | 0.0
What is x in the equation? | -1 <AND> -5 | x = -1 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -5 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -5 or 5 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -1 or x = -5 | 1.0
Can you explain this meme? | This meme is poking fun at the fact that the names of the countries
Iceland and Greenland are misleading. Despite its name, Iceland is known for its beautiful green landscapes,
while Greenland is mostly covered in ice and snow. The meme is saying that the person has trust issues
because the names of these countries do not accurately represent their landscapes. |
The meme talks about Iceland and Greenland. It's pointing out that despite their names,
Iceland is not very icy and Greenland isn't very green. | 0.4
Can you explain this meme? | This meme is poking fun at the fact that the names of the countries
Iceland and Greenland are misleading. Despite its name, Iceland is known for its beautiful green landscapes,
while Greenland is mostly covered in ice and snow. The meme is saying that the person has trust issues
because the names of these countries do not accurately represent their landscapes. |
The meme is using humor to point out the misleading nature of Iceland's and Greenland's names.
Iceland, despite its name, has lush green landscapes while Greenland is mostly covered in ice and snow.
The text 'This is why I have trust issues' is a playful way to suggest
that these contradictions can lead to distrust or confusion.
The humor in this meme is derived from the unexpected contrast between the names of the countries
and their actual physical characteristics. | 1.0
"""
MMVET_CAPABILITIES = ("rec", "ocr", "know", "gen", "spat", "math")


def mmvet_prompt(question: str, answer: str, prediction: str) -> str:
    """VLMEvalKit's MMVet grading prompt for one answer."""
    answer = answer.replace("<AND>", " <AND> ").replace("<OR>", " <OR> ")
    return MMVET_PROMPT + "\n" + " | ".join([question, answer, prediction, ""])


def _as_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def judge_mmvet(judge, item: BenchItem, prediction: str) -> dict:
    """{score in [0, 1], log, failed}: up to 5 tries until the reply is a number in [0, 1], else 0."""
    prompt = mmvet_prompt(item.question, str(item.answer), str(prediction))
    notes = ""
    for attempt in range(JUDGE_RETRIES):
        reply = _ask(judge, prompt, attempt, MMVET_MAX_TOKENS)
        score = _as_float(reply)
        if score is None:
            notes += f"Try {attempt}: output is {reply}, failed to parse.\n"
        elif score < 0 or score > 1:
            notes += f"Try {attempt}: output is {reply}, invalid score: {score}.\n"
        else:
            return {"score": score, "log": notes + "Succeed", "failed": False}
    return {"score": 0.0, "log": notes + "All 5 retries failed.\n", "failed": True}


def mmvet_result(items: list[BenchItem], judged: dict[str, dict]) -> dict:
    """Overall score (mean judge score, percent) with per-capability and per-category-combination means."""
    totals: dict[str, list[float]] = {}
    combos: dict[str, list[float]] = {}
    for item in items:
        score = float(judged[str(item.index)]["score"])
        for capability in MMVET_CAPABILITIES:
            if capability in item.category:
                totals.setdefault(capability, []).append(score)
        combos.setdefault(item.category.replace(",", "_") or "all", []).append(score)
    scores = [float(judged[str(it.index)]["score"]) for it in items]
    return {
        "n": len(items),
        "score": round(100.0 * sum(scores) / max(1, len(scores)), 4),
        "chance": None,
        "per_category": _percent(combos),
        "per_capability": _percent(totals),
        "judged": len(items),
        "extraction_failed": sum(bool(judged[str(it.index)]["failed"]) for it in items),
    }


def _percent(groups: dict[str, list[float]]) -> dict[str, dict]:
    return {
        k: {"accuracy": round(100.0 * sum(v) / len(v), 4), "n": len(v), "chance": None}
        for k, v in sorted(groups.items())
    }


# ---- MathVista -----------------------------------------------------------------------------------

# In-context examples and instruction of VLMEvalKit's build_mathvista_gpt4_prompt (byte-identical,
# including its "respone" typo and the missing newline before "Extracted answer:").
_MATHVISTA_TASK = """
Please read the following example.
Then extract the answer from the model response and type it at the end of the prompt.\n
"""
_MATHVISTA_EXAMPLES = (
    """
Hint: Please answer the question requiring an integer answer and provide the final value,
e.g., 1, 2, 3, at the end.\n
Question: Which number is missing?\n
Model response: The number missing in the sequence is 14.\n
Extracted answer: 14
""",
    """
Hint: Please answer the question requiring a floating-point number with one decimal place and provide the final value,
e.g., 1.2, 1.3, 1.4, at the end.\n
Question: What is the fraction of females facing the camera?\n
Model response: The fraction of females facing the camera is 0.6,
which means that six out of ten females in the group are facing the camera.\n
Extracted answer: 0.6
""",
    """
Hint: Please answer the question requiring a floating-point number with two decimal places and provide the final value,
e.g., 1.23, 1.34, 1.45, at the end.\n
Question: How much money does Luca need to buy a sour apple candy and a butter-scotch candy? (Unit: $)\n
Model response: Luca needs $1.45 to buy a sour apple candy and a butterscotch candy.\n
Extracted answer: 1.45
""",
    """
Hint: Please answer the question requiring a Python list as an answer and provide the final list,
e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.\n
Question: Between which two years does the line graph saw its maximum peak?\n
Model response: The line graph saw its maximum peak between 2007 and 2008.\n
Extracted answer: [2007, 2008]
""",
    """
Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.\n
Question: What fraction of the shape is blue?\n
Choices: (A) 3/11 (B) 8/11 (C) 6/11 (D) 3/5\n
Model response: The correct answer is (B) 8/11.\n
Extracted answer: B
""",
)


def mathvista_prompt(question: str, prediction: str) -> str:
    """VLMEvalKit's MathVista answer-extraction prompt for one response."""
    prompt = _MATHVISTA_TASK
    for example in _MATHVISTA_EXAMPLES:
        prompt += example + "\n"
    return prompt + question + "\n" + "Model respone: " + prediction + "Extracted answer:"


def _choices(item: BenchItem) -> dict[str, str]:
    raw = item.extra.get("choices", "")
    try:
        values = ast.literal_eval(raw) if raw else []
    except (ValueError, SyntaxError):
        values = []
    return {string.ascii_uppercase[i]: str(v) for i, v in enumerate(values)}


def mathvista_check(item: BenchItem, response: str, prefetch: bool):
    """VLMEvalKit's post_check: the matched answer (prefetch) or True/False for `response`.

    Text and list answers never match, exactly as in VLMEvalKit 0.0.20 (its `res = str(res)` compares
    the string "None"); kept so scores stay comparable with the leaderboard."""
    answer = item.answer
    result = None
    try:
        if item.extra.get("question_type") == "multi_choice":
            answer = item.extra.get("answer_option", item.answer)
            result = infer_option(response, _choices(item))
            if prefetch:
                return result
        elif item.extra.get("answer_type") == "integer":
            result, answer = int(response), int(item.answer)
        elif item.extra.get("answer_type") == "float":
            result, answer = float(response), float(item.answer)
        else:
            result, answer = str(result), str(answer)
    except ValueError:
        pass
    if result == answer:
        return result if prefetch else True
    return False


def judge_mathvista(judge, item: BenchItem, prediction: str) -> dict:
    """{res (extracted answer), log, failed}: the prediction itself when it already matches (prefetch),
    else the judge's extraction, up to 5 tries while the API fails."""
    prefetched = mathvista_check(item, prediction, prefetch=True)
    if prefetched:
        return {"res": prefetched, "log": "Prefetch succeed", "failed": False}
    prompt = mathvista_prompt(item.question, str(prediction))
    notes = ""
    for attempt in range(JUDGE_RETRIES):
        reply = _ask(judge, prompt, attempt, MATHVISTA_MAX_TOKENS)
        if FAIL_MSG in reply:
            notes += f"Try {attempt}: output is {prediction}, failed to parse.\n"
        else:
            return {"res": reply, "log": notes + "Succeed", "failed": False}
    return {"res": "", "log": notes + "All 5 retries failed.\n", "failed": True}


def mathvista_result(items: list[BenchItem], judged: dict[str, dict]) -> dict:
    """Overall accuracy (percent) with per-task and per-skill accuracy and the prefetch count."""
    by_task: dict[str, list[float]] = {}
    by_skill: dict[str, list[float]] = {}
    hits, prefetched, failed = [], 0, 0
    for item in items:
        record = judged[str(item.index)]
        hit = float(bool(mathvista_check(item, str(record["res"]), prefetch=False)))
        hits.append(hit)
        prefetched += record["log"] == "Prefetch succeed"
        failed += bool(record["failed"])
        by_task.setdefault(item.extra.get("task") or item.category or "all", []).append(hit)
        raw_skills = item.extra.get("skills", "")
        try:
            skills = ast.literal_eval(raw_skills) if raw_skills else []
        except (ValueError, SyntaxError):
            skills = [raw_skills]
        for skill in skills if isinstance(skills, list | tuple) else [skills]:
            by_skill.setdefault(str(skill), []).append(hit)
    return {
        "n": len(items),
        "score": round(100.0 * sum(hits) / max(1, len(hits)), 4),
        "chance": None,
        "per_category": _percent(by_task),
        "per_skill": _percent(by_skill),
        "prefetched": prefetched,
        "judged": len(items) - prefetched,
        "extraction_failed": failed,
    }


# scorer name in the registry -> (judge one answer, aggregate the judged answers)
JUDGED_SCORERS = {
    "mmvet": (judge_mmvet, mmvet_result),
    "mathvista": (judge_mathvista, mathvista_result),
}
