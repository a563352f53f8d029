"""`make test` sets up the browser tier itself when it can (root + apt-get) and otherwise says exactly what is missing
(observation 14). The Makefile's recipes run here against fake apt-get/fc-list on a PATH of our own."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAKE = shutil.which("make")

pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def _fake_bin(tmp_path: Path, *, apt_ok: bool) -> Path:
    """A PATH with no chromium and no CJK font, an apt-get that logs its arguments, and the tools recipes need."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("grep", "id"):
        real = shutil.which(tool)
        assert real is not None
        (bin_dir / tool).symlink_to(real)
    (bin_dir / "fc-list").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/apt.log\nexit {0 if apt_ok else 100}\n')
    for script in ("fc-list", "apt-get"):
        (bin_dir / script).chmod(0o755)
    return bin_dir


def _make(tmp_path: Path, bin_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert MAKE is not None
    env = {**os.environ, "PATH": str(bin_dir)}
    return subprocess.run([MAKE, "--no-print-directory", "-C", str(ROOT), *args], env=env, capture_output=True,
                          text=True, timeout=60)


def test_browser_deps_installs_exactly_what_is_missing(tmp_path: Path) -> None:
    done = _make(tmp_path, _fake_bin(tmp_path, apt_ok=True), "browser-deps")
    assert done.returncode == 0, done.stderr
    assert "browser tier: installing Debian packages: chromium fonts-noto-cjk" in done.stdout
    assert (tmp_path / "apt.log").read_text().splitlines() == ["update -qq", "install -y -qq chromium fonts-noto-cjk"]


def test_a_failed_install_fails_browser_deps_but_only_warns_under_make_test(tmp_path: Path) -> None:
    bin_dir = _fake_bin(tmp_path, apt_ok=False)
    strict = _make(tmp_path, bin_dir, "browser-deps")
    assert strict.returncode != 0
    message = ("browser tier: could not install chromium fonts-noto-cjk "
               "(apt-get failed; are you root, is the network up?)")
    assert message in strict.stderr
    tolerant = _make(tmp_path, bin_dir, "browser-deps", "BROWSER_DEPS_OPTIONAL=1")
    assert tolerant.returncode == 0 and message in tolerant.stderr  # the browser tests then report it


def test_without_root_or_apt_make_test_names_what_is_missing(tmp_path: Path) -> None:
    done = _make(tmp_path, _fake_bin(tmp_path, apt_ok=True), "browser-check")
    assert done.returncode == 0
    assert ("browser tier: missing Debian packages: chromium fonts-noto-cjk (not root or no apt-get, so not "
            "installed; run 'sudo make browser-deps'). Its tests skip, or fail under CI=true.") in done.stderr
    assert not (tmp_path / "apt.log").exists()


def test_make_test_depends_on_browser_deps_when_it_can_apt(tmp_path: Path) -> None:
    bin_dir = _fake_bin(tmp_path, apt_ok=True)
    as_root = _make(tmp_path, bin_dir, "-n", "test", "CAN_APT=yes").stdout
    assert "apt-get install -y -qq $missing" in as_root and '[ -n "1" ]' in as_root
    assert as_root.rstrip().endswith(".venv/bin/pytest")
    unprivileged = _make(tmp_path, bin_dir, "-n", "test", "CAN_APT=").stdout
    assert "apt-get install" not in unprivileged and "browser tier: missing Debian packages" in unprivileged


FAKE_NPM = """#!/bin/sh
# logs its arguments and "installs" the package the way npm lays it out under --prefix
echo "$@" >> "$NPM_LOG"
[ -n "$NPM_FAIL" ] && exit 1
prefix=""; pkg=""; prev=""
for a in "$@"; do
  [ "$prev" = "--prefix" ] && prefix="$a"
  case "$a" in weui@*|echarts@*) pkg="${a%@*}";; esac
  prev="$a"
done
mkdir -p "$prefix/node_modules/weui/dist/style" "$prefix/node_modules/echarts/dist"
[ "$pkg" = weui ] && echo css > "$prefix/node_modules/weui/dist/style/weui.min.css"
[ "$pkg" = echarts ] && echo js > "$prefix/node_modules/echarts/dist/echarts.min.js"
exit 0
"""


def _assets_tree(tmp_path: Path, *, fail: bool = False) -> tuple[Path, dict[str, str]]:
    """A copy of the Makefile in an empty tree, and a PATH whose npm is the fake above."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "Makefile").write_text((ROOT / "Makefile").read_text())
    bin_dir = tmp_path / "npm-bin"
    bin_dir.mkdir()
    (bin_dir / "npm").write_text(FAKE_NPM)
    (bin_dir / "npm").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "NPM_LOG": str(tmp_path / "npm.log"),
           **({"NPM_FAIL": "1"} if fail else {})}
    return tree, env


def test_make_assets_installs_weui_and_echarts_once(tmp_path: Path) -> None:
    assert MAKE is not None
    tree, env = _assets_tree(tmp_path)
    for _ in range(2):
        done = subprocess.run([MAKE, "--no-print-directory", "-C", str(tree), "assets"], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    assert (tree / "static/vendor/echarts/echarts.min.js").read_text() == "js\n"
    assert (tree / "static/vendor/weui/weui.min.css").read_text() == "css\n"
    calls = (tmp_path / "npm.log").read_text().splitlines()
    assert [c.split()[-1] for c in calls] == ["weui@2", "echarts@5"]  # the second run installed nothing
    assert all("--no-save" in c and "--prefix static/vendor" in c for c in calls)


def test_make_assets_without_npm_leaves_the_fallbacks(tmp_path: Path) -> None:
    assert MAKE is not None
    tree, env = _assets_tree(tmp_path, fail=True)
    done = subprocess.run([MAKE, "--no-print-directory", "-C", str(tree), "assets"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr  # the desk still runs: own CSS, charts as tables
    assert not (tree / "static/vendor/echarts/echarts.min.js").exists()
