"""Generate the small two-task dataset of the offline quickstart (examples/data/quickstart).

Both tasks are synthetic, made from templates by this script (seeded, deterministic), so the quickstart runs
anywhere without a download. They are skewed on purpose (IWN addresses class-prior bias):
- reviews: movie-review sentiment, 1 = positive (60 %), 0 = negative;
- register: 1 = formal, report-like prose (30 %), 0 = casual first-person prose.
About 5 % of labels are flipped at random (label noise), so scores stay below 1.0.
Run: python examples/make_quickstart_data.py [--out examples/data/quickstart]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

NOUNS = [
    "film",
    "movie",
    "plot",
    "script",
    "cast",
    "soundtrack",
    "ending",
    "director",
    "story",
    "performance",
]
POS = [
    "great",
    "excellent",
    "brilliant",
    "wonderful",
    "superb",
    "delightful",
    "moving",
    "sharp",
    "charming",
    "fresh",
]
NEG = ["terrible", "awful", "boring", "dull", "mediocre", "painful", "flat", "clumsy", "tedious", "lifeless"]
FILLER = [
    "honestly",
    "at times",
    "from start to finish",
    "for the most part",
    "in the end",
    "overall",
    "again",
]
TOPICS = [
    "remote work",
    "city cycling",
    "school uniforms",
    "solar panels",
    "public libraries",
    "electric buses",
    "online exams",
    "community gardens",
    "four-day weeks",
    "museum entry fees",
]
FORMAL_OPEN = ["Moreover,", "Furthermore,", "Consequently,", "Additionally,", "In summary,", "Therefore,"]
FORMAL_CLAIM = [
    "the results show that",
    "the data indicate that",
    "it has been observed that",
    "evidence suggests that",
    "studies have demonstrated that",
]
CASUAL_OPEN = ["i think", "honestly i feel", "maybe", "i guess", "personally", "my friend says"]
CASUAL_CLAIM = ["is kind of", "is sort of", "is probably", "is pretty much", "is somewhat"]
QUALITIES = ["beneficial", "costly", "popular", "useful", "overrated", "practical", "risky", "effective"]


def _review(rng: random.Random, label: int) -> str:
    words = POS if label else NEG
    other = NEG if label else POS
    parts = [f"the {rng.choice(NOUNS)} is {rng.choice(words)}"]
    if rng.random() < 0.5:
        parts.append(f"and the {rng.choice(NOUNS)} feels {rng.choice(words)}")
    if rng.random() < 0.25:  # a contrasting clause keeps the task from being a lookup
        parts.append(f"even if the {rng.choice(NOUNS)} is {rng.choice(other)}")
    if rng.random() < 0.5:
        parts.insert(0, rng.choice(FILLER))
    text = " , ".join(parts)
    return text + rng.choice([" .", " !", ""])


def _register(rng: random.Random, label: int) -> str:
    topic, quality = rng.choice(TOPICS), rng.choice(QUALITIES)
    if label:
        first = f"{rng.choice(FORMAL_OPEN)} {rng.choice(FORMAL_CLAIM)} {topic} is {quality}."
        second = (
            f"{rng.choice(FORMAL_OPEN)} {rng.choice(FORMAL_CLAIM)} further {rng.randint(2, 40)} cases agree."
        )
    else:
        first = f"{rng.choice(CASUAL_OPEN)} {topic} {rng.choice(CASUAL_CLAIM)} {quality}"
        second = f"{rng.choice(CASUAL_OPEN)} we should talk about it more{rng.choice(['!', '?', '.'])}"
    return f"{first} {second}" if rng.random() < 0.7 else first


TASKS = {"reviews": (_review, 0.6), "register": (_register, 0.3)}
SIZES = {"train": 400, "validation": 100, "test": 100}
NOISE = 0.05


def make(out: Path, seed: int = 0) -> None:
    """Write <out>/<task>/{train,validation,test}.jsonl; texts are unique within a task."""
    for t_index, (task, (make_text, positive_share)) in enumerate(TASKS.items()):
        rng = random.Random(seed * 1000 + t_index)
        seen: set[str] = set()
        folder = out / task
        folder.mkdir(parents=True, exist_ok=True)
        for split, size in SIZES.items():
            rows = []
            while len(rows) < size:
                label = int(rng.random() < positive_share)
                text = make_text(rng, label)
                if text in seen:
                    continue
                seen.add(text)
                if rng.random() < NOISE:
                    label = 1 - label
                rows.append({"id": f"{task}-{split}-{len(rows)}", "text": text, "label": label})
            with open(folder / f"{split}.jsonl", "w", encoding="utf-8") as f:
                f.writelines(json.dumps(r) + "\n" for r in rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "data" / "quickstart"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    make(Path(args.out), args.seed)
