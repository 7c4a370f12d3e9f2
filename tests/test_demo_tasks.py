"""data/make_demo_tasks.py: the sentiment splits and the unlabelled in-domain text for pretraining."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
import make_demo_tasks  # noqa: E402


def read_tsv(path: Path) -> list[str]:
    return [line.split("\t", 1)[1] for line in path.read_text(encoding="utf-8").splitlines()[1:]]


def test_unlabelled_text_is_the_training_portion_and_never_dev_or_test(tmp_path):
    neg = [f"第{i}家酒店很差。服务也不好！" for i in range(60)] + ["两边都有的句子。"]
    pos = [f"第{i}本书很好看。推荐！" for i in range(60)] + ["两边都有的句子。"]
    (tmp_path / "neg.txt").write_text("\n".join(neg + neg[:5]) + "\n", encoding="utf-8")  # with duplicates
    (tmp_path / "pos.txt").write_text("\n".join(pos) + "\n", encoding="utf-8")
    out = tmp_path / "sentiment"
    counts = make_demo_tasks.sentiment_task(tmp_path / "neg.txt", tmp_path / "pos.txt", out, seed=1,
                                            caps=(20, 10, 10))
    train, dev, test = (read_tsv(out / f"{name}.tsv") for name in ("train", "dev", "test"))
    assert (len(train), len(dev), len(test)) == (20, 10, 10) and counts["in_both_dropped"] == 1
    reviews = ["".join(doc.splitlines()) for doc in (out / "unlabelled.txt").read_text(encoding="utf-8")
               .split("\n\n") if doc.strip()]
    # 120 distinct reviews: 12 dev, 12 test, 96 in the training portion (20 of them labelled for fine-tuning).
    assert counts["unlabelled"] == len(reviews) == 96
    assert set(train) <= set(reviews)
    assert not set(reviews) & (set(dev) | set(test))
    first = (out / "unlabelled.txt").read_text(encoding="utf-8").split("\n\n")[0].splitlines()
    assert len(first) == 2 and first[0].endswith("。") and first[1].endswith("！")  # one sentence a line
