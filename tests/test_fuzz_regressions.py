"""Replay the fuzzing corpora and every crasher ever found (tests/fuzz/) through the targets.

A file in tests/fuzz/crashers/ is an input that once crashed or hung; it stays as a regression
test after the fix. The targets accept only documented errors, so any other exception fails here.
"""

import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).parent / "fuzz"
sys.path.insert(0, str(FUZZ))
import harness  # noqa: E402

PARSER_INPUTS = sorted((FUZZ / "corpus_parser").glob("*")) + sorted((FUZZ / "crashers").glob("parser-*"))
DECODER_INPUTS = sorted((FUZZ / "corpus_decoder").glob("*")) + sorted((FUZZ / "crashers").glob("decoder-*"))


@pytest.mark.parametrize("path", PARSER_INPUTS, ids=lambda p: p.name)
def test_parser_input(path):
    data = path.read_bytes()
    harness.parse_target(data)
    harness.parse_target_crc_valid(data)


@pytest.fixture(scope="module")
def seed():
    return harness.seed_file()


@pytest.mark.parametrize("path", DECODER_INPUTS, ids=lambda p: p.name)
def test_decoder_input(seed, path):
    harness.decode_target(seed, path.read_bytes())


def test_empty_decoder_input_once_crashed(seed):
    """Found by the fuzzer: constriction raised AssertionError on a stream for a 1×1 header."""
    harness.decode_target(seed, b"")
