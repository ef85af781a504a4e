"""`make fuzz`: coverage-guided fuzzing (atheris/libFuzzer) of the .fcx parser and the decoder.

    python tests/fuzz/run_fuzz.py parser  -runs=1000000
    python tests/fuzz/run_fuzz.py decoder -runs=10000

Extra arguments go to libFuzzer. The corpus folders next to this file seed the runs and keep
what the fuzzer finds; crashers are written to tests/fuzz/crashers/ and become regression
tests (tests/test_fuzz_regressions.py replays every file there and in the corpora).
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# Instrument our package only: instrumenting torch's Python code would take minutes.
with atheris.instrument_imports(include=["flowcodec_cli", "harness"]):
    import harness  # noqa: E402


def main() -> None:
    target, *libfuzzer_args = sys.argv[1:]
    corpus = HERE / f"corpus_{target}"
    corpus.mkdir(exist_ok=True)  # git keeps no empty folders: a fresh clone may lack it
    crashers = HERE / "crashers"
    crashers.mkdir(exist_ok=True)
    if target == "parser":
        def test_one(data: bytes) -> None:
            harness.parse_target(data)
            harness.parse_target_crc_valid(data)
    elif target == "decoder":
        seed = harness.seed_file()

        def test_one(data: bytes) -> None:
            harness.decode_target(seed, data)
    else:
        raise SystemExit(f"unknown target {target!r} (parser or decoder)")
    args = [sys.argv[0], str(corpus), f"-artifact_prefix={crashers}/{target}-",
            "-timeout=10", "-rss_limit_mb=4096", *libfuzzer_args]
    atheris.Setup(args, test_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
