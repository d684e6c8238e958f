"""`python -m server` prepares the metrics directory before anything picks the Prometheus client's storage."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from server.__main__ import METRICS_DIR_ENV, prepare_metrics_dir


def test_the_launcher_does_not_import_the_metrics_client_before_it_sets_the_directory() -> None:
    # The client picks its storage (in memory, or files per process) when first imported.
    code = "import sys, server.__main__; sys.exit('prometheus_client' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_our_own_directory_is_private_and_emptied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(METRICS_DIR_ENV, raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    path = Path(prepare_metrics_dir(8123))
    assert path == tmp_path / f"todochat-metrics-{os.getuid()}-8123"
    assert path.stat().st_mode & 0o777 == 0o700
    (path / "counter_123.db").write_bytes(b"old run")
    (path / "keep.txt").write_text("not ours")
    assert Path(prepare_metrics_dir(8123)) == path
    assert sorted(p.name for p in path.iterdir()) == ["keep.txt"]  # a previous run's values are gone


def test_a_directory_others_can_write_to_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(METRICS_DIR_ENV, raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    planted = tmp_path / f"todochat-metrics-{os.getuid()}-8124"
    planted.mkdir()
    planted.chmod(0o777)
    with pytest.raises(PermissionError, match=METRICS_DIR_ENV):
        prepare_metrics_dir(8124)


def test_a_given_directory_is_used_and_emptied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    given = tmp_path / "metrics"
    given.mkdir()
    (given / "gauge_livesum_9.db").write_bytes(b"old run")
    monkeypatch.setenv(METRICS_DIR_ENV, str(given))
    assert prepare_metrics_dir(8125) == str(given)
    assert list(given.iterdir()) == []
