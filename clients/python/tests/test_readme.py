"""Every ```python block of README.md runs as written against the server, each
in its own process with STEWRD_URL / STEWRD_API_KEY of a fresh project (and
STEWRD_ADMIN_TOKEN for the operator's example)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

import stewrd

from conftest import ADMIN_TOKEN

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks() -> List[str]:
    return re.findall(r"^```python\n(.*?)^```$", README.read_text(encoding="utf-8"), re.M | re.S)


def test_the_readme_has_examples() -> None:
    assert len(blocks()) >= 8


@pytest.mark.parametrize("index", range(len(blocks())))
def test_readme_example_runs(index: int, admin: stewrd.Client, server_url: str, tmp_path: Path) -> None:
    code = blocks()[index]
    key = admin.admin.projects.create(f"readme example {index}")["api_key"]
    env = {
        **os.environ,
        "STEWRD_URL": server_url,
        "STEWRD_API_KEY": key,
        "STEWRD_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    script = tmp_path / f"example_{index}.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, f"README example {index} failed:\n{code}\n--- stderr ---\n{done.stderr}"
    assert done.stdout.strip(), f"README example {index} printed nothing"
