"""The lock files still satisfy pyproject.toml, and pin every package with its hashes.

`make` and CI install `requirements-dev.lock` with `--require-hashes`, the image installs
`requirements.lock`; a range changed in pyproject.toml without `make lock` must fail here rather
than install something else than what was reviewed (README, Why each dependency is here).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^ \\;]+)")


def locked(name: str) -> dict[str, tuple[str, int]]:
    """Package → (version, number of hashes) for every pin in a lock file."""
    pins: dict[str, tuple[str, int]] = {}
    current = None
    for line in (ROOT / name).read_text().splitlines():
        if match := PIN.match(line):
            current = canonicalize_name(match[1])
            pins[current] = (match[2], 0)
        elif current and line.strip().startswith("--hash=sha256:"):
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
        elif line and not line.startswith(" "):
            current = None
    return pins


@pytest.mark.parametrize(
    ("lock", "requirements"),
    [
        ("requirements.lock", PYPROJECT["dependencies"]),
        (
            "requirements-dev.lock",
            PYPROJECT["dependencies"] + PYPROJECT["optional-dependencies"]["dev"],
        ),
    ],
)
def test_the_lock_satisfies_every_range_and_hashes_every_pin(lock, requirements):
    pins = locked(lock)
    for text in requirements:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in {lock}: run `make lock`"
        version, _ = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{lock} pins {requirement.name}=={version}, outside {requirement.specifier}: "
            "run `make lock`"
        )
    unhashed = sorted(name for name, (_, hashes) in pins.items() if hashes == 0)
    assert not unhashed, f"{lock} pins without a hash: {unhashed}"


def test_the_lock_names_no_index_or_local_path():
    for lock in ("requirements.lock", "requirements-dev.lock"):
        text = (ROOT / lock).read_text()
        assert "--index-url" not in text
        assert "--find-links" not in text
        assert "file://" not in text
        assert "/opt/" not in text
