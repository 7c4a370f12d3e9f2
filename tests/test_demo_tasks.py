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
    dev_text = ["".join(doc.splitlines()) for doc in (out / "unlabelled_dev.txt").read_text(encoding="utf-8")
                .split("\n\n") if doc.strip()]
    # Held-out text for masked-LM eval: the whole dev portion (the dev file is capped), never a training review.
    assert len(dev_text) == 12 and set(dev) <= set(dev_text) and not set(dev_text) & set(reviews)


def test_pair_task_pretraining_text_holds_training_documents_only(tmp_path):
    corpus = tmp_path / "corpus.txt"
    docs = [[f"文档{d}的第{s}句。" for s in range(3)] for d in range(40)]
    corpus.write_text("".join("".join(f"{s}\n" for s in doc) + "\n" for doc in docs), encoding="utf-8")
    out = tmp_path / "pairs"
    counts = make_demo_tasks.pair_task(corpus, out, seed=3, sizes=(30, 6, 6))
    assert (counts["train_documents"], counts["dev_documents"], counts["test_documents"]) == (32, 4, 4)

    def documents(name: str) -> set[str]:
        text = (out / name).read_text(encoding="utf-8")
        return {doc for doc in text.split("\n\n") if doc.strip()}

    train, dev, test = documents("unlabelled.txt"), documents("unlabelled_dev.txt"), documents("unlabelled_test.txt")
    assert len(train) == 32 and len(dev) == len(test) == 4 and not (train & dev or train & test or dev & test)
    train_sentences = set("".join(train).split())
    for name, held_out in (("dev.txt", dev), ("test.txt", test)):
        for line in (out / name).read_text(encoding="utf-8").splitlines():
            a, _, _ = line.split("\t")
            assert a not in train_sentences and a in "".join(held_out)  # pair sentences never seen in pretraining
