"""The conda environment and the Makefile's venv install the same exact pins."""

import re

from crowd.paths import PROJECT_ROOT


def pins(lines):
    return {m.group(1).lower(): m.group(2) for m in (re.match(r"^\s*(?:- )?([A-Za-z0-9_.\-]+)==([^\s#]+)", ln) for ln in lines) if m}


def test_environment_yml_matches_requirements():
    req = pins((PROJECT_ROOT / "requirements.txt").read_text().splitlines())
    env = pins((PROJECT_ROOT / "environment.yml").read_text().splitlines())
    assert req == env
    assert req["torch"] == "2.14.1" and req["torchvision"] == "0.29.1"
