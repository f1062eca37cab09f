"""torchrun entry for the DDP test: ``moelens train`` flags, run on the test backend.

Once ``moelens.models`` and ``moelens.data`` are merged (``train_helpers.REAL_BACKEND``), the test
can start ``-m moelens train`` directly instead of this file.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import train_helpers

from moelens import config
from moelens.train import TrainConfig, run

if __name__ == "__main__":
    cfg = config.parse(TrainConfig, sys.argv[1:], prog="train_ddp_entry", preset_kind="train")
    raise SystemExit(run(cfg, train_helpers.make_backend()))
