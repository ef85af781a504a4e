"""The bench's own option checks: the ones click cannot do (comma-separated lists, CODEC=values,
combinations of options, ranges that depend on a model). Click already checks types, choices
(`--device`, `--bd-method`) and that DIRECTORY is a folder, so nothing here repeats that."""

from __future__ import annotations

import math


class BenchUsageError(ValueError):
    """A bad option value (exit code 2 on the command line)."""


def parse_floats(text: str | None, what: str) -> tuple[float, ...] | None:
    """'0.001,0.01' -> (0.001, 0.01); None stays None; BenchUsageError on anything else."""
    if text is None:
        return None
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise BenchUsageError(f"{what}: expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise BenchUsageError(f"{what}: no values given")
    if not all(math.isfinite(v) for v in values):
        raise BenchUsageError(f"{what}: values must be finite")
    return values


def parse_names(text: str | None) -> list[str] | None:
    """'a, b,a' -> ['a', 'b']: de-duplicated so that no codec is measured twice, order kept so
    that reports follow the user's order."""
    if text is None:
        return None
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise BenchUsageError("empty list of names")
    return list(dict.fromkeys(names))


def parse_setting_overrides(items) -> dict[str, tuple[float, ...]]:
    """('webp=5,60', ...) -> {'webp': (5.0, 60.0)}. Empty value lists are refused here (by
    parse_floats), so the run never sees one."""
    overrides: dict[str, tuple[float, ...]] = {}
    for item in items or ():
        name, sep, values = item.partition("=")
        if not sep or not name.strip():
            raise BenchUsageError(f"--settings {item!r}: expected CODEC=S1,S2,...")
        overrides[name.strip()] = parse_floats(values, f"--settings {name.strip()}")
    return overrides


def check_count(value: int | None, option: str) -> None:
    """`--images` / `--threads`: plain ints on the command line, so at least 1 is checked here."""
    if value is not None and value < 1:
        raise BenchUsageError(f"{option} must be at least 1")


def check_betas(betas: tuple[float, ...] | None) -> tuple[float, ...] | None:
    """Positive β values, duplicates dropped (each β is one curve point)."""
    if betas is None:
        return None
    if any(b <= 0 for b in betas):
        raise BenchUsageError("--betas must be positive")
    return tuple(dict.fromkeys(betas))
