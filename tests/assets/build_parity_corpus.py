"""Writes vlmeval_parity_corpus.jsonl: model outputs (verbose, markdown, lowercase, several letters, option
text, refusals, empty) for the VLMEvalKit parity test. Run `python tests/assets/build_parity_corpus.py`."""

from __future__ import annotations

import json
from pathlib import Path

OPTION_SETS = [
    {"A": "blue", "B": "red", "C": "dark red", "D": "green"},
    {"A": "A cat sitting on a mat", "B": "A dog", "C": "Two birds", "D": "None of the above"},
    {"A": "3", "B": "4", "C": "5", "D": "6"},
    {"A": "Yes", "B": "No"},
    {"A": "The left one", "B": "The right one", "C": "Both", "D": "Neither"},
    {"A": "increase", "B": "decrease", "C": "stay the same"},
    {"A": "Paris", "B": "London", "C": "Berlin", "D": "Madrid", "E": "Rome", "F": "Vienna"},
    {"A": "1.5 m", "B": "2.5 m", "C": "15 m", "D": "25 m"},
    {"A": "猫", "B": "狗", "C": "鸟", "D": "鱼"},
    {"A": "(1, 2)", "B": "(2, 1)", "C": "[0, 0]", "D": "x > y"},
]

MCQ_TEMPLATES = [
    "{L}", "{L}.", "({L})", "{L}. {T}", "{L}: {T}", "{L}) {T}", "[{L}]", "{{{L}}}", "{l}", "({l})", "{l}. {t}",
    "The answer is {L}.", "The answer is ({L}).", "The answer is: {L}", "Answer: {L}", "answer: {l}",
    "Final answer: {L}", "Option {L}", "option {l}", "<answer>{L}</answer>", "<answer>{l}</answer>",
    "**{L}**", "**{L}. {T}**", "The correct option is **{L}**.", "### Answer\n**{L}**", "- {L}", "${L}$",
    "{L}\n", "\n{L}", "  {L}  ", "{L}\n\nExplanation: the image clearly shows {t}.",
    "{L} and {M}", "{L} or {M}", "Neither {L} nor {M}.", "Either {L} or {M}", "Both {L} and {M} are correct.",
    "{L}, {M}", "The answer is {L}, not {M}.", "{L}. {T}\n{M}. {U}",
    "{T}", "{t}", "{T}.", "It is {t}.", "I think it is {t}.", "The image shows {t} and {u}.",
    "I think the answer is {t} because the picture shows it.",
    "Let's analyze the image step by step. The object in the center looks like {t}. "
    "Comparing with the options, the best match is {L}.",
    "{L} is the correct answer because the image shows {t} clearly in the upper left corner of the frame.",
    "Looking at the image, I can see several things. First, there is a large area. Second, the colours "
    "are bright. Therefore, the answer is ({L}) {T}.",
    "The answer is {L}. Because {t} is visible in the image.",
    "A careful look suggests {L}.", "A: {T}", "I would say {L}", "I'd pick {L}", "答案是{L}", "选{L}",
    "{L}.{T}", "{L}{M}", "{L}/{M}", "({L}) and ({M})", "Z", "z", "(Z) None of these",
    "Sorry, I can't help with images of people yet.", "Cannot determine the answer from the image.",
    "I can't process this file.", "I'm sorry, but without the image provided I cannot say.",
    "I cannot answer this question.", "Failed to obtain answer via API.", "", " ", "None", "nan", "N/A",
    "The image is too blurry to tell.", "{T} {T}", "Not {t}.", "{U}? No, {t}.",
]  # fmt: skip

YES_NO = [
    "Yes", "No", "yes", "no", "yes.", "No.", "YES", "NO", "Yes!", "No!", "(Yes)", "[No]", "'Yes'", '"No"',
    "**Yes**", "**No**", "yes:", "no:", "Answer: Yes", "Answer: no", "The answer is yes.", "Yes, there is a dog.",
    "No, there isn't.", "No, there is not a dog in the image.", "Yes and no.", "yes or no", "Yes/No", "yes-no",
    "I'm not sure.", "", " ", "Not really.", "Nope.", "Yep", "Noo", "Yes\n", "\nNo", "Yes, it is.",
    "No. There are no cars.", "Yes, 1,000 people.", "No; the sign says stop.", "There is no dog. Yes.",
    "Yes, no doubt.", "Yes.Yes.", "yes,no", "No-one is there.", "Yes—there is.", "yes?", "No?",
    "Definitely yes", "Absolutely not.", "The image shows a cat, so the answer is no.", "yes yes yes",
    "It is not possible to say.", "Y", "N", "是", "否", "No, it is a cat (not a dog).", "Yes; yes.",
    "no. (The image shows no.)", "ANSWER: YES", "Yes - the light is red.", "no_answer", "yes_no",
]  # fmt: skip

VQA_CASES = [
    (["2"] * 10, ["2", "two", "Two", "2.", "two dogs", "3", "2 ", "Two.", "2,", "(2)", "twenty", "2.0"]),
    (["cat"] * 6 + ["kitten"] * 4, ["cat", "Cat", "a cat", "The cat", "cat.", "kitten", "A kitten.", "cats", "dog"]),
    (["stop"] * 3 + ["stop sign"] * 7, ["stop", "STOP", "stop sign", "Stop Sign.", "the stop sign", "sign"]),
    (["1000"] * 5 + ["1,000"] * 5, ["1000", "1,000", "1.000", "1 000", "one thousand", "1,000.", "$1,000"]),
    (["coca-cola"] * 4 + ["coca cola"] * 6, ["coca-cola", "coca cola", "Coca-Cola", "cocacola", "coke"]),
    (["don't"] * 10, ["don't", "dont", "do not", "Don't!", "DONT"]),
    (["3:30"] * 10, ["3:30", "330", "3 30", "three thirty", "3:30 pm"]),
    (["new york"] * 9 + ["nyc"], ["New York", "new york city", "NYC", "new-york", "The New York."]),
    (["yes"] * 10, ["Yes", "yes.", "Yes, it is.", "no", "yes yes"]),
    (["10%"] * 10, ["10%", "10", "10 %", "ten percent", "10 percent"]),
    (["a.b.c"] * 10, ["a.b.c", "abc", "a. b. c", "A.B.C."]),
    (["e.g."] * 10, ["e.g.", "eg", "e.g", "E.G."]),
    (["none"] * 10, ["none", "0", "zero", "None.", "nothing"]),
    (["left"] * 2 + ["right"] * 8, ["left", "right", "Left.", "on the right", "right side"]),
    (["the beatles"] * 10, ["The Beatles", "beatles", "Beatles.", "the beatles band"]),
    (["5"], ["5", "five", "Five.", "6"]),
    (["apple", "apples"], ["apple", "apples", "An apple.", "pear"]),
    (["it's", "its", "it is"] * 3 + ["it is"], ["it's", "its", "It is", "itis"]),
    (["red and white"] * 10, ["red and white", "Red & White", "red/white", "red, white", "white and red"]),
    (["12,345.67"] * 10, ["12,345.67", "12345.67", "12345,67", "12,345.67."]),
    (["hello world"] * 10, ["hello\nworld", "hello\tworld", " hello world ", "hello-world", "hello_world"]),
    (["(555) 123-4567"] * 10, ["(555) 123-4567", "555 123 4567", "555-123-4567", "5551234567"]),
    (["#1"] * 10, ["#1", "1", "number 1", "# 1"]),
    (["wasnt"] * 10, ["wasn't", "wasnt", "was not"]),
    (["etc"] * 10, ["etc" + "." * 40, "etc . . . " * 5, "e.t.c" * 12]),  # VLMEvalKit strips at most 32 periods
]  # fmt: skip

ANLS_CASES = [
    (["1995"], ["1995", "1995.", "1996", "in 1995", "1,995", "", " 1995 ", "19 95"]),
    (["Dr. John Smith", "John Smith"], ["John Smith", "Dr. John Smith", "Dr John Smith", "J. Smith", "Smith",
                                        "DR. JOHN SMITH", "Jon Smyth", "Jane Doe"]),
    (["$1,250.00"], ["$1,250.00", "1,250.00", "$1250", "1250", "$1,250", "$ 1,250.00"]),
    (["quarterly report"], ["Quarterly Report", "quarterly  report", "quarterly\nreport", "quarter report",
                            "annual report", "quarterly reports", "the quarterly report"]),
    (["ab"], ["ab", "a", "abc", "b", "ba", "xy", "ab."]),
    (["abcd"], ["abce", "abxx", "axxx", "ab", "abcdef", "abcdefgh"]),
    (["Straße"], ["strasse", "Straße", "STRASSE", "strase", "Strasse."]),
    (["March 3, 2001", "3/3/2001"], ["March 3, 2001", "3/3/2001", "03/03/2001", "March 3 2001", "2001"]),
    ([""], ["", "x"]),
    (["N/A"], ["N/A", "n/a", "NA", "none"]),
    (["45%"], ["45%", "45", "45 %", "forty-five percent"]),
]  # fmt: skip

RELAXED_CASES = [
    (["100"], ["100", "104", "105", "105.1", "106", "95", "94.9", "100.0", "1e2", "100%", " 100 ", "100.",
               "1,00", "one hundred", "nan", "inf", "-100", "1_00"]),
    (["0.12"], ["12%", "0.12", "0.126", "0.127", ".12", "12", "0.12%"]),
    (["12%"], ["12%", "0.12", "12", "12.5%", "12 %"]),
    (["0"], ["0", "0.0", "0.01", "zero", "-0", " 0"]),
    (["Paris"], ["Paris", "paris", "Paris.", " Paris ", "PARIS", "Paris, France"]),
    (["1,000"], ["1,000", "1000", "1,050", "1.000"]),
    (["-5.5"], ["-5.5", "-5.3", "-5.8", "5.5", "-5.5%"]),
    (["2019", "2020"], ["2019", "2020", "2021", "2119"]),
    (["nan"], ["nan", "NaN", "0"]),
    (["inf"], ["inf", "1e400", "Infinity"]),
    (["3.14159"], ["3.14", "3.3", "3.2987", "pi", "3"]),
    (["Yes"], ["Yes", "yes", "yes.", "No"]),
]  # fmt: skip

HME = "Handwritten Mathematical Expression Recognition"
OCR_CASES = [
    (["STOP"], "Regular Text Recognition", ["STOP", "stop", "The sign says STOP here", "ST OP", "Stop.", "GO", ""]),
    (["hello world"], "Irregular Text Recognition", ["Hello World", "hello  world", "helloworld",
                                                     "hello\nworld", " the text reads: hello world!"]),
    (["2023"], "Digit String Recognition", ["2023", "20 23", "The number is 2023.", "2O23"]),
    (["x^{2}+1"], HME, ["x^{2}+1", "x ^ { 2 } + 1", "X^{2}+1", "x^{2}\n+1", "$x^{2}+1$", "x^2+1",
                        "x^{2}\t+1"]),
    (["\\frac{a}{b}", "a/b"], HME, ["\\frac { a } { b }", "a / b", "\\frac{A}{B}", "a÷b"]),
    (["Total: $45.00", "45.00"], "Key Information Extraction", ["$45.00", "total: $45.00", "45", "Total:$45.00"]),
    (["Coca Cola"], "Scene Text-centric VQA", ["coca cola", "Coca-Cola", "COCA COLA classic", "cola"]),
    (["yes"], "Doc-oriented VQA", ["Yes", "yes.", "eyes", "no", "Y E S"]),
    ([" padded "], "Artistic Text Recognition", ["padded", "PADDED!", "pad ded"]),
    (["line one\nline two"], "Handwriting Recognition", ["line one line two", "line one\nline two",
                                                         "line oneline two"]),
    (["abc"], "Non-Semantic Text Recognition", ["ABC", "a b c", "xabcx", ""]),
]  # fmt: skip

HINT_QUESTIONS = [
    "What colour is the car?",
    "How many objects are there",
    "图中是什么动物?",
    "Which city is shown?",
]


def mcq_cases() -> list[dict]:
    cases = []
    for k, options in enumerate(OPTION_SETS):
        letters = list(options)
        for right_pos in (0, len(letters) - 1):
            right, other = letters[right_pos], letters[(right_pos + 1) % len(letters)]
            fields = {"L": right, "l": right.lower(), "M": other, "T": options[right], "t": options[right].lower(),
                      "U": options[other], "u": options[other].lower()}  # fmt: skip
            for template in MCQ_TEMPLATES:
                prediction = template.format(**fields)
                cases.append({"kind": "mcq", "question": HINT_QUESTIONS[k % len(HINT_QUESTIONS)],
                              "options": options, "answer": right, "prediction": prediction})  # fmt: skip
    return cases


def main() -> None:
    cases = mcq_cases()
    cases += [
        {"kind": "yesno", "question": "Is there a dog", "answer": "Yes", "prediction": p} for p in YES_NO
    ]
    for kind, table in (("vqa", VQA_CASES), ("anls", ANLS_CASES), ("relaxed", RELAXED_CASES)):
        for answers, predictions in table:
            cases += [{"kind": kind, "answers": answers, "prediction": p} for p in predictions]
    for answers, category, predictions in OCR_CASES:
        cases += [
            {"kind": "ocrbench", "answers": answers, "category": category, "prediction": p}
            for p in predictions
        ]
    out = Path(__file__).with_name("vlmeval_parity_corpus.jsonl")
    with open(out, "w", encoding="utf-8") as f:
        for case in cases:
            f.write(json.dumps(case, ensure_ascii=False) + "\n")
    print(f"{len(cases)} cases -> {out}")


if __name__ == "__main__":
    main()
