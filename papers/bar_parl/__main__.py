"""`python -m reprozoo.papers.bar_parl --preset quick|smoke|full` — BARFI + PARL (see README.md)."""

from __future__ import annotations

import sys

from reprozoo.common.cli import main
from reprozoo.papers.bar_parl import claims, experiment, report

if __name__ == "__main__":
    sys.exit(
        main(
            paper="bar_parl",
            config_cls=experiment.Config,
            presets=experiment.PRESETS,
            run=experiment.run,
            claims=claims.check,
            figure=report.figure,
        )
    )
