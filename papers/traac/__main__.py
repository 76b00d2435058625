"""`python -m reprozoo.papers.traac --preset quick`:
GRPO with TRAAC and its baselines on the reasoning world, claims last.
"""

import sys

from reprozoo.common.cli import main
from reprozoo.papers.traac import claims, experiment, full, report

if __name__ == "__main__":
    sys.exit(
        main(
            paper="traac",
            config_cls=full.Config,
            presets=full.PRESETS,
            run=lambda cfg: (experiment.run if cfg.model == "world" else full.run)(cfg),
            claims=full.for_preset(claims.check, full.claims),
            figure=full.for_preset(report.figure, full.figure),
            table=full.for_preset(report.table, full.table),
        )
    )
