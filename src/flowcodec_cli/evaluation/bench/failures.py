"""How the bench treats a failure of one job: said on stderr, recorded, and the run goes on, since
one unreadable image or one failing codec must not throw away an hour of measurements."""

from __future__ import annotations

import sys


def notice(message: str) -> None:
    """One line on stderr that does not garble a running progress bar."""
    from tqdm import tqdm
    tqdm.write(f"flowcodec: {message}", file=sys.stderr)


def describe(exc: BaseException) -> str:
    """An exception as one short line for stderr and the reports' error lists: an OSError's
    reason without its errno and path (the path is already in the line)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def attempt(what: str, job, errors: list) -> object | None:
    """Run one bench job. A failure is reported on stderr and recorded in `errors`, and the run goes
    on. Returns None for a failed job."""
    try:
        return job()
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - one job failing is reported
        notice(f"{what}: {describe(exc)}")
        errors.append((what, exc))
        return None
