"""Replay the fuzzing corpora and every crasher ever found (tests/fuzz/) through the targets.

A file in tests/fuzz/crashers/ is an input that once crashed, hung or was decoded when it should
have been refused; it stays as a regression test after the fix (tests/fuzz/crashers/README.md).
The targets accept only documented errors, so any other exception fails here; a crasher whose
entry in crashers/expected.json names an error must be refused with that error.
"""

import json
import sys
from pathlib import Path

import pytest

from flowcodec_cli import codec
from flowcodec_cli.codec import entropy, fcx

FUZZ = Path(__file__).parent / "fuzz"
sys.path.insert(0, str(FUZZ))
import harness  # noqa: E402

CRASHERS = FUZZ / "crashers"
NOT_INPUTS = {"README.md", "expected.json"}
CRASHER_FILES = sorted(p for p in CRASHERS.glob("*") if p.name not in NOT_INPUTS)
EXPECTED = json.loads((CRASHERS / "expected.json").read_text()) \
    if (CRASHERS / "expected.json").is_file() else {}
PREFIXES = ("parser-", "decoder-", "fcx-")

PARSER_INPUTS = sorted((FUZZ / "corpus_parser").glob("*")) + sorted(CRASHERS.glob("parser-*"))
DECODER_INPUTS = sorted((FUZZ / "corpus_decoder").glob("*")) + sorted(CRASHERS.glob("decoder-*"))
REFUSED = [p for p in CRASHER_FILES if (EXPECTED.get(p.name) or {}).get("refused_with")]
ERRORS = {"FormatError": fcx.FormatError, "CodecError": codec.CodecError,
          "DesyncError": entropy.DesyncError}


def refusals(entry: dict) -> list[str]:
    """The documented errors that refuse a crasher: none, one name, or a list of names."""
    names = entry.get("refused_with") or []
    return [names] if isinstance(names, str) else names


def test_the_regression_inputs_are_there_and_described():
    """Without this, a missing folder would make every replay below an empty (skipped) set."""
    assert CRASHERS.is_dir(), f"{CRASHERS} is missing"
    assert any(p.name.startswith(("decoder-", "fcx-")) for p in CRASHER_FILES), \
        "no decoder regression input in tests/fuzz/crashers/"
    assert any(p.name.startswith("parser-") for p in CRASHER_FILES)
    assert all(p.name.startswith(PREFIXES) for p in CRASHER_FILES), \
        f"a crasher's name must start with one of {PREFIXES} (it says which target reads it)"
    names = {p.name for p in CRASHER_FILES}
    assert names - set(EXPECTED) == set(), "describe every crasher in crashers/expected.json"
    assert set(EXPECTED) - names == set(), "crashers/expected.json lists files that are gone"
    for name, entry in EXPECTED.items():
        assert entry.get("bug"), f"{name}: say what the bug was"
        assert set(refusals(entry)) <= set(ERRORS), name
    assert len(list((FUZZ / "corpus_parser").glob("*"))) > 0
    assert len(list((FUZZ / "corpus_decoder").glob("*"))) > 0


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


@pytest.mark.parametrize("path", REFUSED, ids=lambda p: p.name)
def test_crasher_is_refused_with_its_documented_error(seed, path):
    """Not crashing is not enough: a damaged file that decodes to some picture is the bug."""
    entry = EXPECTED[path.name]
    data = path.read_bytes()
    with pytest.raises(tuple(ERRORS[name] for name in refusals(entry)), match=entry.get("match")):
        if path.name.startswith("parser-"):
            fcx.unpack(data)
        elif path.name.startswith("decoder-"):
            mutated = harness.mutate_valid_file(seed, data)
            assert mutated is not None, "the instructions no longer make a packable file"
            codec.decode(mutated)
        else:
            codec.decode(data)


def test_empty_decoder_input_once_crashed(seed):
    """Found by the fuzzer: constriction raised AssertionError on a stream for a 1×1 header."""
    harness.decode_target(seed, b"")
