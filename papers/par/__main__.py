"""`python -m reprozoo.papers.par --preset quick`:
PPO with PAR and every reward-shaping baseline; write results; claims.
"""

import sys

from reprozoo.common.cli import main
from reprozoo.papers.par import claims, experiment, full, report

if __name__ == "__main__":
    sys.exit(
        main(
            paper="par",
            config_cls=experiment.Config,
            presets=experiment.PRESETS,
            run=lambda cfg: (full.run if cfg.model else experiment.run)(cfg),
            # --model runs the paper's own setting (full.py), which has its own claims, figure and table
            claims=lambda rows, cfg: (full.claims if cfg.model else claims.check)(rows, cfg),
            figure=lambda rows, cfg, path: (full.figure if cfg.model else report.figure)(rows, cfg, path),
            table=lambda rows, cfg: (full.table if cfg.model else report.table)(rows, cfg),
        )
    )
