"""scripts/docker/base-images.sh keeps no package-mirror address of its own: the Debian mirror for a stand-in image
comes from the host's apt sources (deb822 or one-line), or from DEBIAN_MIRROR, which is required without one."""

from __future__ import annotations

import re
import subprocess

from scripts.stack import ROOT

SCRIPT = ROOT / "scripts" / "docker" / "base-images.sh"


def function(name: str) -> str:
    """One shell function of the script, as written there (one line, or up to its closing brace)."""
    text = SCRIPT.read_text()
    one_line = re.search(rf"^{name}\(\) \{{ .*\}}$", text, re.M)
    return (one_line or re.search(rf"^{name}\(\) \{{\n.*?^\}}$", text, re.S | re.M)).group(0) + "\n"


def host_mirror(apt_dir, archive: str) -> str:
    """The script's own host_mirror function, run against a made-up /etc/apt."""
    code = f"set -euo pipefail\n{function('host_mirror')}host_mirror {archive}"
    out = subprocess.run(["bash", "-c", code], check=True, capture_output=True, text=True,
                         env={"APT_DIR": str(apt_dir), "PATH": "/usr/bin:/bin"})
    return out.stdout.strip()


def test_no_mirror_host_is_written_in_the_script():
    assert re.findall(r"[a-z]+://\S+", SCRIPT.read_text()) == []


def test_the_mirror_comes_from_the_hosts_apt_sources(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    assert host_mirror(tmp_path, "debian") == ""  # none: DEBIAN_MIRROR is then required
    (tmp_path / "sources.list").write_text(
        "# deb http://old.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example.org/debian/ bookworm main\n"
        "deb http://mirror.example.org/debian-security bookworm-security main\n")
    assert host_mirror(tmp_path, "debian") == "http://mirror.example.org/debian"
    assert host_mirror(tmp_path, "debian-security") == "http://mirror.example.org/debian-security"
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://deb822.example.net/debian\nSuites: bookworm bookworm-updates\n\n"
        "Types: deb\nURIs: http://deb822.example.net/debian-security\nSuites: bookworm-security\n")
    assert host_mirror(tmp_path, "debian") == "http://deb822.example.net/debian"  # deb822 first, as apt reads it
    assert host_mirror(tmp_path, "debian-security") == "http://deb822.example.net/debian-security"


def test_without_any_mirror_a_stand_in_is_refused_with_a_message():
    functions = "".join(function(name) for name in ("say", "die", "need_debootstrap"))
    out = subprocess.run(["bash", "-c", f"{functions}id() {{ echo 0; }}\nMIRROR=\nneed_debootstrap"],
                         capture_output=True, text=True)
    assert out.returncode == 1 and "задайте DEBIAN_MIRROR" in out.stderr, out.stderr
