"""``autocompress dashboard`` starts, answers on 127.0.0.1 only, and renders in a browser."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest

from autocompress.cli.main import main

pytest.importorskip("optuna_dashboard", reason="optuna-dashboard (the 'dashboard' extra) is not installed")
optuna.logging.set_verbosity(optuna.logging.WARNING)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening_addresses(port: int) -> set[str]:
    """Local IPv4 addresses with a socket listening on ``port`` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        addr, p = local.split(":")
        if int(p, 16) == port and state == "0A":  # 0A = LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(addr)[::-1]))
    return found


def _study(url: str) -> None:
    study = optuna.create_study(study_name="dash", storage=url, directions=["maximize", "minimize", "minimize"])
    study.set_metric_names(["quality", "latency_ms (projected for rtx3060)", "memory_mb (projected for rtx3060)"])
    for i, (q, lat, mem) in enumerate([(0.95, 40, 900), (0.9, 12, 300), (0.7, 9, 200)]):
        t = study.ask()
        t.suggest_int("dec.bits", [32, 8, 4][i], [32, 8, 4][i])
        t.set_user_attr("plan", f"dec int{[32, 8, 4][i]}")
        study.tell(t, [q, lat, mem])


@pytest.fixture
def dashboard(tmp_path):
    url = f"sqlite:///{tmp_path / 'd.db'}"
    _study(url)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "autocompress", "dashboard", "--storage", url, "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(base + "/api/studies", timeout=5) as r:
                body = r.read().decode()
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"dashboard did not answer: {proc.stdout.read() if proc.stdout else ''}")
            time.sleep(0.5)
    yield port, base, body
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_dashboard_answers_on_loopback_only(dashboard):
    port, _base, body = dashboard
    assert "dash" in body
    assert _listening_addresses(port) == {"127.0.0.1"}


def test_dashboard_refuses_other_addresses_unless_asked(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'd.db'}"
    assert main(["dashboard", "--storage", url, "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--allow-remote" in err[0]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed")
def test_dashboard_renders_in_headless_chromium(dashboard, tmp_path):
    _port, base, _body = dashboard
    shot = tmp_path / "dashboard.png"
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,800",
         "--virtual-time-budget=8000", base + "/dashboard/studies/1"],
        capture_output=True, timeout=120, check=False,
    )
    from matplotlib.image import imread

    img = imread(shot)[..., :3]
    assert img.std() > 0.05, "dashboard screenshot is blank"
    dom = subprocess.run(  # what the page's scripts rendered: the study, its objectives with their labels
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", "--virtual-time-budget=8000",
         base + "/dashboard/studies/1"],
        capture_output=True, text=True, timeout=120, check=False,
    ).stdout
    assert "dash" in dom and "latency_ms (projected for rtx3060)" in dom, dom[-2000:]
    out = os.environ.get("AUTOCOMPRESS_SCREENSHOT_DIR")
    if out:  # how docs/images/dashboard.png is made: AUTOCOMPRESS_SCREENSHOT_DIR=docs/images pytest ...
        Path(out).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(out) / "dashboard.png")


def test_dashboard_on_a_missing_database_says_so_and_serves_it(tmp_path, monkeypatch, capsys):
    """A mistyped --storage made an empty database there and then died in a traceback."""
    import optuna_dashboard
    from optuna_dashboard._storage_url import get_storage

    served = []
    monkeypatch.setattr(optuna_dashboard, "run_server", lambda storage, **kw: served.append(
        get_storage(storage).get_all_studies()))
    assert main(["dashboard", "--storage", f"sqlite:///{tmp_path}/typo/d.db", "--port", str(_free_port())]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no database at" in err[0] and served == [[]]


def test_dashboard_serves_a_database_without_studies_yet(tmp_path, monkeypatch):
    """A database holding only our tables (a search that failed before its study was made, or
    schedules only): optuna-dashboard's own storage, opened without making Optuna's tables,
    failed in a traceback."""
    import optuna_dashboard
    from optuna_dashboard._storage_url import get_storage

    from autocompress.store import Store

    url = f"sqlite:///{tmp_path / 'd.db'}"
    Store(url).close()
    served = []
    monkeypatch.setattr(optuna_dashboard, "run_server", lambda storage, **kw: served.append(
        get_storage(storage).get_all_studies()))
    assert main(["dashboard", "--storage", url, "--port", str(_free_port())]) == 0
    assert served == [[]]


def test_dashboard_on_a_port_in_use_says_so_before_starting(tmp_path, monkeypatch, capsys):
    import optuna_dashboard

    url = f"sqlite:///{tmp_path / 'd.db'}"
    _study(url)
    served = []
    monkeypatch.setattr(optuna_dashboard, "run_server", lambda *a, **kw: served.append(a))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["dashboard", "--storage", url, "--port", str(busy.getsockname()[1])]) == 2
    out, err = capsys.readouterr()
    assert served == [] and "optuna-dashboard on" not in out
    assert err.count("\n") == 1 and "--port" in err and "in use" in err


def test_dashboard_artifacts_that_are_a_file_name_the_flag(tmp_path, capsys):
    """A file given as --artifacts ended in "error: <file>: File exists", naming neither the flag nor the problem."""
    taken = tmp_path / "notes.txt"
    taken.write_text("mine")
    argv = ["dashboard", "--storage", f"sqlite:///{tmp_path / 'd.db'}", "--artifacts", str(taken),
            "--port", str(_free_port())]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --artifacts {taken}: a file, not a folder")
    assert taken.read_text() == "mine" and not (tmp_path / "d.db").exists()  # refused before anything is made
