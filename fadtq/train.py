"""Entry point: ``deepspeed fadtq/train.py --rewards format,accuracy,tq`` (or ``python fadtq/train.py``).

Any config key can be overridden as ``--section.key value``; ``--config`` takes a file or a
preset name from ``configs/`` (default: ``cpu_default``). ``fadtq train`` is the same entry point.
"""

import sys

from fadtq.commands.train import main

if __name__ == "__main__":
    sys.exit(main())
