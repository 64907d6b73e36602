"""Top log-odds words per class on a data folder, with the extraction artefact rule and with the old `\\w+` rule.

python benchmarks/lexicon_artefacts.py > benchmarks/results/lexicon_artefacts.txt
"""

import json
import re
import unicodedata
from pathlib import Path

import surgellm_hf.lexicon_extraction as le

D = Path(__file__).resolve().parents[2] / "shared" / "data"
texts, labels, tasks = [], [], []
for t in ["D1", "D2", "D3", "D4"]:
    for line in (D / t / "train.jsonl").read_text().splitlines():
        r = json.loads(line)
        texts.append(r["text"])
        labels.append(r["label"])
        tasks.append(t)
new = le.rank_words(texts, labels, tasks=tasks, top_n=50)
W = re.compile(r"\w+")
le._words = lambda text: [w for w in W.findall(unicodedata.normalize("NFC", text).casefold()) if w.isalpha()]
old = le.rank_words(texts, labels, tasks=tasks, top_n=50)
arte = {"ctx", "q", "n", "t", "s", "â", "d", "m", "ll", "re", "ve"}
for t in new:
    for y in new[t]:
        o = [w for w, _ in old[t][y]]
        n = [w for w, _ in new[t][y]]
        print(f"{t} label {y}: old top10 {o[:10]}")
        print(f"{t} label {y}: new top10 {n[:10]}")
        print(
            f"   artefacts in old top50: {[w for w in o if w in arte or len(w) == 1]}; in new: {[w for w in n if w in arte or len(w) == 1]}"
        )
