"""A small full disk for the tests that check nothing is lost when space runs out.

``small_disk(kib)`` mounts a tmpfs of that size (the tests run as root in CI and on the
development machine); where mounting is not allowed the test is skipped, and the
size-limited-file variant (RLIMIT_FSIZE in a child process) covers the same writers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def small_disk(tmp_path):
    """``small_disk(kib)`` -> a folder on a fresh tmpfs of ``kib`` KiB; unmounted afterwards."""
    mounted = []

    def mount(kib: int) -> Path:
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        if sys.platform != "linux":
            pytest.skip("tmpfs needs Linux")
        try:
            result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(folder)],
                                    capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as error:
            pytest.skip(f"cannot mount a small tmpfs here ({error})")
        if result.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here ({result.stderr.strip() or result.returncode})")
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture
def file_size_limited():
    """``file_size_limited(code, limit_bytes, cwd)``: see :func:`run_with_file_size_limit`."""
    return run_with_file_size_limit


def run_with_file_size_limit(code: str, limit_bytes: int, cwd: Path) -> subprocess.CompletedProcess:
    """Run Python ``code`` in a child whose files may not grow beyond ``limit_bytes`` (SIGXFSZ ignored).

    Writes past the limit then fail with EFBIG, as on a full disk; the child's stdout,
    stderr and exit code come back.
    """
    if not hasattr(os, "fork") or sys.platform == "win32":
        pytest.skip("RLIMIT_FSIZE needs a POSIX system")
    prelude = textwrap.dedent(f"""
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit_bytes}, {limit_bytes}))
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120)
