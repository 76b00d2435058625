"""`python -m reprozoo.papers.power_dl --preset quick`:
Bandit Type I / II study and the preference world; claims last.
"""

import sys

from reprozoo.common.cli import main
from reprozoo.papers.power_dl import claims, experiment

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
