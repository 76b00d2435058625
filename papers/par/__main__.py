"""`python -m reprozoo.papers.par --preset quick`:
PPO with PAR and every reward-shaping baseline; write results; claims.
"""

import sys

from reprozoo.common.cli import main
from reprozoo.papers.par import claims, experiment

if __name__ == "__main__":
    sys.exit(
        main(
            paper="par",
            config_cls=experiment.Config,
            presets=experiment.PRESETS,
            run=experiment.run,
            claims=claims.check,
            figure=experiment.figure,
            table=experiment.table,
        )
    )
