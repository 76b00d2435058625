"""`python -m papers.power_dl --preset quick` — bandit Type I / II study and the preference world; claims last."""

import sys

from common.cli import main
from papers.power_dl import claims, experiment

if __name__ == "__main__":
    sys.exit(
        main(
            paper="power_dl",
            config_cls=experiment.Config,
            presets=experiment.PRESETS,
            run=experiment.run,
            claims=claims.check,
            figure=experiment.figure,
            table=experiment.table,
        )
    )
