"""Demo data helpers: fetch and prepare the demo corpus (prepare_demo_corpus), build a vocab (build_vocab)."""
