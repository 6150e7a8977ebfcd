"""Entry point: ``deepspeed fadtq/train.py --rewards format,accuracy,tq`` (or ``python fadtq/train.py``).

Any config key can be overridden as ``--section.key value``; ``--config`` takes a file or a
preset name from ``configs/`` (default: ``cpu_default``).
"""

import sys
from pathlib import Path

# Run as a script, Python puts fadtq/ itself first on sys.path, where its modules and packages
# (config.py, data/, api.py, paths.py, ...) would shadow any top-level ones of the same name that a
# dependency imports. Import the package, not the folder.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from fadtq.training.trainer import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
