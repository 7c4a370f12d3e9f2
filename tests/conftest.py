"""Shared pytest setup: quiet TensorFlow, the repo on sys.path, and the reference fixtures in ../shared."""

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # the kernels the CLIs use (training.py's docstring)
REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference"
sys.path.insert(0, str(REPO))


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """../shared/reference (the original vocab, configs and sample corpus): read as fixtures, never copied."""
    if not REFERENCE.is_dir():
        pytest.skip(f"{REFERENCE} is absent (CI has ../shared beside the repo)")
    return REFERENCE


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: subprocess, SIGKILL, multi-worker and real-corpus training tests "
                                       "(the edit loop skips them: bash run_tests.sh -m 'not slow')")
