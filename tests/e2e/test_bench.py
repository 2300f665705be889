"""The benchmark harness runs end to end (one quick round) and reports every measure. It asserts behaviour
(what is reported, that the second upload sends nothing), never a duration: figures live in bench/."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.helpers import server_env

ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.slow


def test_the_benchmark_reports_every_measure(tmp_path: Path) -> None:
    out = tmp_path / "results.md"
    command = [sys.executable, str(ROOT / "bench" / "run.py"), "--runs", "1", "--tasks", "3", "--task-seconds", "1"]
    command += ["--quick", "--out", str(out)]
    done = subprocess.run(command, env=server_env(None, None, None), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    table = out.read_text(encoding="utf-8")
    for number in ("1", "2", "2b", "3", "4", "5", "6", "7"):
        assert f"| {number}. " in table
    assert re.search(r"\| 3\. .*?MB, then 0\.0 MB", table)  # the second edit of the same photo uploads nothing
    assert table.startswith("Machine: ")
    floor = r"\| 1\. .*? ms \(\d+\.\d\d× the SDK's floor; middle half of rounds \d+\.\d\d–\d+\.\d\d×\) \| the SDK's"
    assert re.search(floor, table)


def test_the_tools_list_benchmark_reports_its_sizes_against_the_targets() -> None:
    command = [sys.executable, str(ROOT / "bench" / "run.py"), "--only-tools-list"]
    done = subprocess.run(command, env=server_env(None, None, None), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    row = r"\| 6\. `tools/list` size .*? [\d,]+ bytes in all \(target ≤ 15,000\); [\d,]+ bytes shown to the model"
    assert re.search(row, done.stdout), done.stdout
    assert re.search(r"the server instructions [\d,]+ bytes", done.stdout), done.stdout


def test_the_replicas_benchmark_reports_its_measure(tmp_path: Path) -> None:
    from tests.support.postgres_server import binaries

    if binaries() is None:
        pytest.skip("PostgreSQL is not installed (.ci/run installs Debian's postgresql package)")
    command = [sys.executable, str(ROOT / "bench" / "run.py"), "--only-replicas", "--quick", "--tasks", "4"]
    done = subprocess.run(command, env=server_env(None, None, None), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert re.search(r"\| 8\. two replicas .*? 4 images downloaded, at most 1× each", done.stdout), done.stdout


def test_the_fairness_benchmark_reports_the_lone_tasks_lag(tmp_path: Path) -> None:
    command = [sys.executable, str(ROOT / "bench" / "run.py"), "--only-fairness", "--quick", "--tasks", "4"]
    done = subprocess.run(command, env=server_env(None, None, None), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert re.search(r"\| 9\. two tenants, 4 tasks vs 1 .*? first query by id [\d.]+ s .*? on disk", done.stdout)


def test_the_decode_peaks_benchmark_reports_every_format_within_what_the_budget_counts(tmp_path: Path) -> None:
    command = [sys.executable, str(ROOT / "bench" / "run.py"), "--only-decode-peaks", "--quick"]
    done = subprocess.run(command, env=server_env(None, None, None), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = re.findall(r"^\| (.+?) \| 1000×1000 \| .+? KB \| ([\d,]+) MB \| ([\d,]+) MB \| sent as ", done.stdout, re.M)
    assert [name for name, _, _ in rows][:3] == ["JPEG", "JPEG progressive, 4:4:4", "PNG 8-bit RGB"]
    assert len(rows) == 11, done.stdout
    assert all(int(peak.replace(",", "")) <= int(counted.replace(",", "")) for _, peak, counted in rows), done.stdout


def test_a_cold_agents_window_shows_what_a_client_receives_and_nothing_else(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    lab.mkdir()
    made = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "agent" / "lab.py"), str(lab)], capture_output=True, text=True, timeout=60
    )
    assert made.returncode == 0, made.stderr[-2000:]
    emulator = int(made.stdout.strip())
    try:
        window = [sys.executable, str(ROOT / "bench" / "agent" / "window.py"), str(lab)]
        listed = subprocess.run([*window, "list"], capture_output=True, text=True, timeout=120)
        call = '{"prompt": "make it night", "images": ["~/Pictures/car.jpg"], "dry_run": true}'
        called = subprocess.run([*window, "call", "edit_image", call], capture_output=True, text=True, timeout=120)
    finally:
        os.kill(emulator, signal.SIGTERM)  # the emulator lab.py started, by its PID
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert listed.stdout.startswith("# SERVER INSTRUCTIONS\n")
    assert f"Local images may come from {lab / 'home'} (not its hidden folders)" in listed.stdout
    assert "\n# TOOL edit_image — " in listed.stdout and "\n# PROMPT " in listed.stdout
    assert called.returncode == 0, called.stderr[-2000:]
    assert called.stdout.startswith("isError: False\n--- text\nDry run: nothing was sent and nothing is billed.")
    assert "Output size: 2736*1536." in called.stdout  # the car photo's 16:9 at about 2K
