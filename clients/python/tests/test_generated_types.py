"""src/stewrd/_types.py is exactly what generate.sh makes from clients/openapi.json
(CI runs the same check: a stale or hand-edited file fails)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def test_generate_sh_reproduces_the_committed_types(tmp_path: Path) -> None:
    out = tmp_path / "_types.py"
    done = subprocess.run(["bash", str(HERE / "generate.sh"), str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    committed = (HERE / "src" / "stewrd" / "_types.py").read_bytes()
    assert out.read_bytes() == committed, "run clients/python/generate.sh and commit src/stewrd/_types.py"


def test_types_import_without_typing_extensions() -> None:
    # The generated module must import on a bare Python (httpx is the only
    # dependency): typing_extensions is imported for type checkers only.
    source = (HERE / "src" / "stewrd" / "_types.py").read_text()
    assert "if TYPE_CHECKING:\n    from typing_extensions import" in source
    code = (
        "import sys; sys.modules['typing_extensions'] = None; "
        "import stewrd.types as t; assert 'status' in t.SessionOut.__annotations__"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
