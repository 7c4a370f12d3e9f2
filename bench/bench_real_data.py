"""A results table on real public Chinese benchmarks, as users download them: each task fine-tuned from random init
and from the shipped checkpoint (same config and recipe), beside a simple baseline, with a leakage check.

Data: ``../shared/datasets`` (or ``--datasets``): ChnSentiCorp, LCQMC (dev/test only), CLUENER2020 (train/dev),
People's Daily NER (ymcui split: train/dev), MSRA NER (validation and test). The product never needs them; this
script reads them through the CLIs' own readers (run_classifier.py / run_ner.py with --train_file/--dev_file/
--test_file), so a reader that misreads a file shows up here.

Selection and result are kept apart for every task: the checkpoint is chosen on a *selection* file and the number
reported is on a file no choice saw.

===============  ===========================================  ==================  ===============================
task             trained on                                   selection           reported on
===============  ===========================================  ==================  ===============================
chnsenticorp     train.tsv (9,600)                            dev.tsv             test.tsv: accuracy
lcqmc            dev.txt minus every 10th pair (7,921)        every 10th dev pair test.txt: accuracy
cluener          train.json minus its last 1,000 rows         those 1,000 rows    dev.json: entity F1, per type
peoples_daily    the first --pd_train sentences of train.txt  the next 1,000      dev.txt: entity F1
msra             val (3,000) minus every 10th sentence        every 10th          msra_test_bio: entity F1
===============  ===========================================  ==================  ===============================

Baselines, for scale: the majority class and a TF-IDF character 1-3-gram logistic regression (for pairs: the
n-grams of each side and of both; scikit-learn) for classification; for NER a dictionary of the training
entities (each string with its most frequent type), tagged by greedy longest match.

Leakage: the share of each reported set's sentences (at least 8 characters, NFKC, spaces removed) that occur
verbatim in the shipped checkpoint's pretraining text (the training-portion People's Daily 1998-01 documents and
reviews: pretrained/albert_demo_zh/make.sh) and in the whole People's Daily 1998-01 text; People's Daily NER is
cut from that very month. Scores on the overlapping and the clean sentences are reported apart for NER.

Usage:
  python bench/bench_real_data.py --work output/bench_real_data              (all tasks; ~1 h on 2 cores)
  python bench/bench_real_data.py --tasks chnsenticorp,lcqmc --starts random_init
Writes WORK/results.json (every run's scores, wall seconds, command) and prints the markdown table.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import time
import unicodedata
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_mrc import read_results, run_logged  # noqa: E402  (bench/ is on sys.path when run as a script)

import ner_data  # noqa: E402

SHIPPED = REPO / "pretrained" / "albert_demo_zh"
MIN_LEAK_CHARS = 8


# ---------------------------------------------------------------------------------------------------------------------
# Splits (files written to WORK/<task>/, in each source's own format)
# ---------------------------------------------------------------------------------------------------------------------

def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def conll_sentences(path: Path) -> list[list[str]]:
    """A ``char TAG`` file's sentences, each as its lines."""
    sentences, current = [], []
    for line in lines_of(path) + [""]:
        if line.strip():
            current.append(line)
        elif current:
            sentences.append(current)
            current = []
    return sentences


def write_conll(path: Path, sentences: list[list[str]]) -> Path:
    return write_lines(path, [line for s in sentences for line in s + [""]])


def every_tenth(items: list) -> tuple[list, list]:
    """(the rest, every 10th item): a selection split that keeps the source's order and mix."""
    return [x for i, x in enumerate(items) if i % 10 != 9], [x for i, x in enumerate(items) if i % 10 == 9]


def prepare(task: str, datasets: Path, work: Path, pd_train: int) -> dict[str, Path]:
    """{split: file} for ``task``: train, dev (selection), test (reported)."""
    out = work / task
    if task == "chnsenticorp":
        d = datasets / "chnsenticorp"
        return {"train": d / "train.tsv", "dev": d / "dev.tsv", "test": d / "test.tsv"}
    if task == "lcqmc":
        rest, select = every_tenth(lines_of(datasets / "lcqmc" / "dev.txt"))
        return {"train": write_lines(out / "train.txt", rest), "dev": write_lines(out / "select.txt", select),
                "test": datasets / "lcqmc" / "test.txt"}
    if task == "cluener":
        rows = [r for r in lines_of(datasets / "cluener2020" / "train.json") if r.strip()]
        return {"train": write_lines(out / "train.json", rows[:-1000]),
                "dev": write_lines(out / "select.json", rows[-1000:]), "test": datasets / "cluener2020" / "dev.json"}
    if task == "peoples_daily":
        d = datasets / "peopledaily_ner" / "ymcui_split"
        sentences = conll_sentences(d / "train.txt")
        return {"train": write_conll(out / "train.txt", sentences[:pd_train]),
                "dev": write_conll(out / "select.txt", sentences[pd_train:pd_train + 1000]), "test": d / "dev.txt"}
    if task == "msra":
        d = datasets / "msra_ner"
        pairs = list(zip(lines_of(d / "val_sentences.txt"), lines_of(d / "val_tags.txt"), strict=True))
        rest, select = every_tenth(pairs)
        for name, part in (("train", rest), ("select", select)):
            write_lines(out / f"{name}_sentences.txt", [s for s, _ in part])
            write_lines(out / f"{name}_tags.txt", [t for _, t in part])
        return {"train": out / "train_sentences.txt", "dev": out / "select_sentences.txt",
                "test": d / "msra_test_bio"}
    raise ValueError(f"unknown task {task!r}")


# ---------------------------------------------------------------------------------------------------------------------
# Tasks: CLI, recipe, readers of their files (through the product's processors)
# ---------------------------------------------------------------------------------------------------------------------

CLASSIFICATION = {"chnsenticorp": "chnsenticorp", "lcqmc": "lcqmc"}  # bench name -> --task_name
NER = {"cluener": "cluener", "peoples_daily": "peoples_daily_ner", "msra": "msra_ner"}
SEQ = {"chnsenticorp": 128, "lcqmc": 64, "cluener": 64, "peoples_daily": 128, "msra": 128}
# The demo's recipes for this model (demo.sh): classification LR 3e-4; NER LR 1e-3, batch 16, CRF.
EPOCHS = 2


def finetune(task: str, files: dict[str, Path], out: Path, init: str | None, seed: int, save_steps: int) -> dict:
    ner = task in NER
    script, task_name = ("run_ner.py", NER[task]) if ner else ("run_classifier.py", CLASSIFICATION[task])
    command = [sys.executable, script, f"--task_name={task_name}", *(f"--{s}_file={p}" for s, p in files.items()),
               f"--vocab_file={SHIPPED}/vocab.txt", f"--bert_config_file={SHIPPED}/albert_config.json",
               *([f"--init_checkpoint={init}"] if init else []), f"--output_dir={out}", "--do_train=true",
               "--do_eval=true", "--do_predict=true", f"--max_seq_length={SEQ[task]}",
               f"--train_batch_size={16 if ner else 32}", "--eval_batch_size=64", "--predict_batch_size=64",
               f"--learning_rate={1e-3 if ner else 3e-4}", f"--num_train_epochs={EPOCHS}", f"--seed={seed}",
               f"--save_checkpoints_steps={save_steps}", "--iterations_per_loop=50", "--keep_checkpoint_max=1",
               "--bias_correction=true", "--adam_epsilon=1e-8", "--warmup_proportion=0.1",
               *(["--use_crf=true"] if ner else [])]
    start = time.time()
    done = out / ("test_results.txt" if ner else "test_results.tsv")
    if not done.exists():
        run_logged(command, out)
    select = read_results(out / "eval_results.txt")
    result = {"seconds": round(time.time() - start), "step": int(select["global_step"]),
              "command": " ".join(command[1:])}
    if ner:
        test = read_results(out / "test_results.txt")
        result.update(select_f1=select["eval_f1"], test_f1=test["eval_f1"],
                      test_per_type={k[5:-3]: v for k, v in test.items()
                                     if k.startswith("eval_") and k.endswith("_f1") and k != "eval_f1"})
        result["predictions"] = str(out / "test_predictions.txt")
    else:
        result.update(select_accuracy=select["eval_accuracy"], test_accuracy=classification_accuracy(task, files, out),
                      predictions=str(out / "test_results.tsv"))
    return result


def classification_examples(task: str, path: Path, split: str) -> list:
    import classifier_data
    processor = classifier_data.get_processor(CLASSIFICATION[task])
    return processor.read_file(str(path), split)


def classification_accuracy(task: str, files: dict[str, Path], out: Path) -> float:
    """Test accuracy from test_results.tsv (one probability row per test example) and the test file's labels."""
    labels = lines_of(out / "label_list.txt")
    gold = [e.label for e in classification_examples(task, files["test"], "dev")]  # "dev": labels required
    rows = [[float(x) for x in line.split("\t")] for line in lines_of(out / "test_results.tsv")]
    if len(rows) != len(gold):
        raise SystemExit(f"{out}/test_results.tsv has {len(rows)} rows for {len(gold)} test examples")
    return sum(labels[max(range(len(r)), key=r.__getitem__)] == g for r, g in zip(rows, gold)) / len(gold)


def ner_examples(task: str, path: Path, split: str) -> list[ner_data.NerExample]:
    processor = ner_data.get_processor(NER[task])
    return processor.read_file(str(path), split)


# ---------------------------------------------------------------------------------------------------------------------
# Baselines
# ---------------------------------------------------------------------------------------------------------------------

def classification_baselines(task: str, files: dict[str, Path]) -> dict[str, float]:
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    train = classification_examples(task, files["train"], "train")
    test = classification_examples(task, files["test"], "dev")
    majority = collections.Counter(e.label for e in train).most_common(1)[0][0]
    pair = train[0].text_b is not None

    def vectorizers(fit: list) -> Callable[[list], object]:
        sides = [TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True)
                 for _ in range(3 if pair else 1)]
        sides[0].fit([e.text_a for e in fit] + ([e.text_b for e in fit] if pair else []))
        if pair:
            sides[1].fit([e.text_a + "｜" + e.text_b for e in fit])

        def features(examples: list):
            if not pair:
                return sides[0].transform([e.text_a for e in examples])
            a, b = sides[0].transform([e.text_a for e in examples]), sides[0].transform([e.text_b for e in examples])
            return hstack([a, b, a.multiply(b), sides[1].transform([e.text_a + "｜" + e.text_b for e in examples])])
        return features

    features = vectorizers(train)
    model = LogisticRegression(C=4.0, max_iter=2000).fit(features(train), [e.label for e in train])
    predicted = model.predict(features(test))
    return {"majority_accuracy": sum(e.label == majority for e in test) / len(test),
            "tfidf_lr_accuracy": float(sum(p == e.label for p, e in zip(predicted, test)) / len(test))}


def dictionary_baseline(task: str, files: dict[str, Path]) -> dict[str, float]:
    """Training entities (string -> most frequent type), tagged on the test text by greedy longest match."""
    train = ner_examples(task, files["train"], "train")
    test = ner_examples(task, files["test"], "dev")
    types: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for e in train:
        for kind, first, last in ner_data.entities(e.tags):
            types["".join(e.units[first:last + 1])][kind] += 1
    lexicon = {s: c.most_common(1)[0][0] for s, c in types.items() if len(s) > 1 or len(types) < 50}
    longest = max(map(len, lexicon), default=0)
    predicted = []
    for e in test:
        tags, i = [ner_data.OUTSIDE] * len(e.units), 0
        while i < len(e.units):
            for n in range(min(longest, len(e.units) - i), 0, -1):
                kind = lexicon.get("".join(e.units[i:i + n]))
                if kind is not None:
                    tags[i:i + n] = [f"B-{kind}"] + [f"I-{kind}"] * (n - 1)
                    i += n
                    break
            else:
                i += 1
        predicted.append(tags)
    return {"dictionary_f1": ner_data.entity_scores([e.tags for e in test], predicted)["overall"]["f1"]}


# ---------------------------------------------------------------------------------------------------------------------
# Leakage
# ---------------------------------------------------------------------------------------------------------------------

def normalize(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).split())


def pretraining_texts(work: Path) -> dict[str, str]:
    """{"pretraining": the shipped checkpoint's pretraining text, "people_daily_199801": the whole month}, made
    as pretrained/albert_demo_zh/make.sh makes them (the demo's cache, built when missing)."""
    cache = REPO / ".cache" / "demo"
    corpus = cache / "people_daily_199801.txt"
    if not corpus.exists():
        subprocess.check_call([sys.executable, "data/prepare_demo_corpus.py", "--cache_dir", ".cache",
                               "--output_dir", str(cache)], cwd=REPO)
    tasks = work / "demo_tasks"
    if not (tasks / "pairs" / "unlabelled.txt").exists():
        subprocess.check_call([sys.executable, "data/make_demo_tasks.py", "--demo_dir", str(cache),
                               "--output_dir", str(tasks), "--max_examples", "4000,1000,1000"], cwd=REPO)
    seen = (tasks / "pairs" / "unlabelled.txt").read_text(encoding="utf-8") + \
        (tasks / "sentiment" / "unlabelled.txt").read_text(encoding="utf-8")
    return {"pretraining": normalize(seen), "people_daily_199801": normalize(corpus.read_text(encoding="utf-8"))}


def leaked(sentences: list[str], text: str) -> list[bool]:
    """Per sentence: does it occur verbatim in ``text`` (sentences shorter than MIN_LEAK_CHARS never count)?"""
    return [len(s) >= MIN_LEAK_CHARS and s in text for s in map(normalize, sentences)]


def test_sentences(task: str, files: dict[str, Path]) -> list[str]:
    if task in NER:
        return ["".join(e.units) for e in ner_examples(task, files["test"], "dev")]
    examples = classification_examples(task, files["test"], "dev")
    return [e.text_a for e in examples] + [e.text_b for e in examples if e.text_b]  # each side of a pair


def leakage(task: str, files: dict[str, Path], texts: dict[str, str], runs: dict) -> dict:
    sentences = test_sentences(task, files)
    report = {"sentences": len(sentences)}
    for name, text in texts.items():
        flags = leaked(sentences, text)
        report[f"in_{name}"] = sum(flags) / len(flags)
        if name == "pretraining" and task == "chnsenticorp" and any(flags):  # accuracy on seen and unseen texts
            gold = [e.label for e in classification_examples(task, files["test"], "dev")]
            for run_name, run in runs.items():
                out = Path(run["predictions"])
                labels = lines_of(out.parent / "label_list.txt")
                rows = [[float(x) for x in line.split("\t")] for line in lines_of(out)]
                right = [labels[max(range(len(r)), key=r.__getitem__)] == g for r, g in zip(rows, gold)]
                for part, keep in (("seen", True), ("unseen", False)):
                    index = [i for i, f in enumerate(flags) if f == keep]
                    run[f"test_accuracy_{part}_in_pretraining"] = sum(right[i] for i in index) / len(index)
        if name == "pretraining" and task in NER and any(flags):  # F1 on the overlapping and the clean sentences
            gold = [e.tags for e in ner_examples(task, files["test"], "dev")]
            for run_name, run in runs.items():
                # every reported set here is BIO, so test_predictions.txt is too
                predicted = [[line.split()[-1] for line in s] for s in conll_sentences(Path(run["predictions"]))]
                for part, keep in (("seen", True), ("unseen", False)):
                    index = [i for i, f in enumerate(flags) if f == keep]
                    scores = ner_data.entity_scores([gold[i] for i in index], [predicted[i] for i in index])
                    run[f"test_f1_{part}_in_pretraining"] = scores["overall"]["f1"]
    return report


# ---------------------------------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--work", type=Path, default=REPO / "output" / "bench_real_data")
    parser.add_argument("--tasks", default="chnsenticorp,lcqmc,cluener,peoples_daily,msra")
    parser.add_argument("--starts", default="random_init,shipped")
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--pd_train", type=int, default=8000, help="People's Daily training sentences")
    parser.add_argument("--save_steps", type=int, default=100)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results_file = args.work / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    texts = pretraining_texts(args.work)
    for task in args.tasks.split(","):
        files = prepare(task, args.datasets, args.work, args.pd_train)
        entry = results.setdefault(task, {"runs": {}})
        entry["files"] = {k: str(v) for k, v in files.items()}
        entry["baselines"] = (dictionary_baseline if task in NER else classification_baselines)(task, files)
        print(task, entry["baselines"], flush=True)
        for start in args.starts.split(","):
            init = str(SHIPPED) if start == "shipped" else None
            entry["runs"][start] = finetune(task, files, args.work / f"{task}_{start}", init, args.seed,
                                            args.save_steps)
            print(task, start, {k: v for k, v in entry["runs"][start].items() if k != "command"}, flush=True)
        entry["leakage"] = leakage(task, files, texts, entry["runs"])
        print(task, entry["leakage"], flush=True)
        results_file.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print_table(results)


def print_table(results: dict) -> None:
    print("\n| task | metric | baseline | random init | shipped | gain | in pretraining text | in PD 1998-01 |")
    print("|---|---|---|---|---|---|---|---|")
    for task, entry in results.items():
        ner = task in NER
        metric = "test entity F1" if ner else "test accuracy"
        base = entry["baselines"].get("dictionary_f1", entry["baselines"].get("tfidf_lr_accuracy"))
        runs = entry["runs"]
        key = "test_f1" if ner else "test_accuracy"
        score = {s: runs[s][key] * 100 if s in runs else float("nan") for s in ("random_init", "shipped")}
        leak = entry.get("leakage", {})
        print(f"| {task} | {metric} | {base * 100:.1f} | {score['random_init']:.1f} | {score['shipped']:.1f} | "
              f"{score['shipped'] - score['random_init']:+.1f} | {leak.get('in_pretraining', 0) * 100:.1f} % | "
              f"{leak.get('in_people_daily_199801', 0) * 100:.1f} % |")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
