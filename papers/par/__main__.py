"""`python -m papers.par --preset quick` — PPO with PAR and every reward-shaping baseline; write results; claims."""

import sys

from common.cli import main
from papers.par import claims, experiment

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
