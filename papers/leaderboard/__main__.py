"""`python -m reprozoo.papers.leaderboard --preset quick` — every RLHF method of the project on one world and budget."""

import sys

from reprozoo.common.cli import main
from reprozoo.papers.leaderboard import claims, experiment, ranking

if __name__ == "__main__":
    sys.exit(
        main(
            paper="leaderboard",
            config_cls=experiment.Config,
            presets=experiment.PRESETS,
            run=experiment.run,
            claims=claims.check,
            figure=ranking.figure,
            table=lambda rows, cfg: ranking.ranked_table(rows),
        )
    )
