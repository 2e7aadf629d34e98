"""Detection without its extra (``pip install googlenet`` alone): one line naming ``googlenet[detection]``.

OpenCV contrib (Selective Search) and scipy (MultiBox's priors and matching) come with the
``detection`` extra of pyproject.toml. Here they are hidden the way a missing package is: an import
of them raises ImportError (``sys.modules[name] = None``), in a real process for the command.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from googlenet.detection.multibox import fit_priors, match_priors
from googlenet.detection.proposals import check_method, proposal_method, propose, selective_search
from googlenet.errors import GoogLeNetError

from .helpers import REPO

HINT = "pip install 'googlenet[detection]'"


def test_proposals_command_without_opencv_says_which_extra(tmp_path: Path) -> None:
    out = tmp_path / "ss.json"
    hide_cv2 = (
        "import sys; sys.modules['cv2'] = None; from googlenet.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    args = ["proposals", "--data", "builtin", "--method", "selective-search", "--out", str(out)]
    result = subprocess.run(
        [sys.executable, "-c", hide_cv2, *args], capture_output=True, text=True, timeout=300, cwd=REPO
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "googlenet proposals: error: proposal method 'selective-search' needs OpenCV contrib "
        f"(cv2.ximgproc), which is not installed: {HINT}"
    ]
    assert "Traceback" not in result.stderr and not out.exists()


def test_library_without_opencv_or_scipy_raises_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)
    image = np.zeros((40, 40, 3), np.uint8)
    with pytest.raises(
        GoogLeNetError, match=r"^Selective Search needs OpenCV contrib .*googlenet\[detection\]"
    ):
        selective_search(image)
    with pytest.raises(GoogLeNetError, match=r"proposal method 'paper' needs OpenCV contrib"):
        check_method(proposal_method("paper", multibox=Path.cwd()))
    # MultiBox's boxes alone need no OpenCV.
    method = proposal_method("multibox", multibox=Path.cwd(), multibox_top=1)
    assert propose(image, method, multibox=lambda im, top: [[1, 1, 4, 4]]).tolist() == [[1, 1, 4, 4]]
    for name in ("scipy.cluster.vq", "scipy.optimize"):
        monkeypatch.setitem(sys.modules, name, None)
    boxes = np.random.default_rng(0).random((6, 4))
    with pytest.raises(GoogLeNetError, match=r"^MultiBox's priors and matching need scipy: .*detection"):
        fit_priors(boxes, 2)
    with pytest.raises(GoogLeNetError, match="need scipy"):
        match_priors(boxes[:2], boxes[2:])
