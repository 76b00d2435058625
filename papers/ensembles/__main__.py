"""`python -m reprozoo.papers.ensembles --preset quick`:
Best-of-n and PPO against reward-model ensembles; print claims.
"""

import sys

from reprozoo.common.cli import main
from reprozoo.papers.ensembles import claims, experiment, full, report

if __name__ == "__main__":
    sys.exit(
        main(
            paper="ensembles",
            config_cls=experiment.Config,
            presets=experiment.PRESETS,
            run=lambda cfg: (full.run if cfg.model else experiment.run)(cfg),
            # --model runs the best-of-n headline on real models (full.py), with its own claims, figure and table
            claims=lambda rows, cfg: (full.claims if cfg.model else claims.check)(rows, cfg),
            figure=lambda rows, cfg, path: (full.figure if cfg.model else report.figure)(rows, cfg, path),
            table=lambda rows, cfg: (full.table if cfg.model else report.table)(rows, cfg),
        )
    )
