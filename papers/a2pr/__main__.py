"""`python -m reprozoo.papers.a2pr --preset quick` — A2PR vs TD3+BC / IQL / BC on locally generated offline datasets."""

from __future__ import annotations

import sys

from reprozoo.common.cli import main
from reprozoo.papers.a2pr.claims import check
from reprozoo.papers.a2pr.experiment import PRESETS, Config, run
from reprozoo.papers.a2pr.report import figure

if __name__ == "__main__":
    sys.exit(main(paper="a2pr", config_cls=Config, presets=PRESETS, run=run, claims=check, figure=figure))
