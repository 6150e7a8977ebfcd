"""Build, or rebuild and verify, the pretrained policy shipped in ``pretrained/``.

``configs/cpu_default.yaml`` starts RL from a ``base`` Qwen2.5-VL that ``fadtq pretrain`` taught
to describe look-alike images (fadtq/pretraining/pretrain.py). Pretraining takes about 20 minutes on
one thread, so the repository may ship the result with its recipe, the command that made it, its
held-out description check and the sha256 of its weights (``pretrained/<name>/recipe.json``).

    .venv/bin/python tools/pretrained_policy.py            # rebuild in a temp folder, compare the sha256
    .venv/bin/python tools/pretrained_policy.py --write    # (re)write the shipped checkpoint
    .venv/bin/python tools/pretrained_policy.py --config learnability   # the lab's policy (varied reasoning)

One thread throughout (``bench/benchlib.py`` pins it): the same recipe on the same kind of machine
gives the same bytes.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from benchlib import one_thread  # noqa: E402  (pins threads before torch is imported)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--write", action="store_true", help="write pretrained/<name>/ instead of verifying it")
    parser.add_argument("--config", default="cpu_default",
                        help="the run config whose model.pretrain_* recipe to build (default cpu_default; "
                             "learnability: the lab's policy, which goes on from the default's)")
    args = parser.parse_args()
    one_thread()
    from fadtq.run_config import load_run_config
    from fadtq.pretraining.pretrain import build_pretrained, recipe_from_config, weights_sha256, write_recipe
    from fadtq.pretraining.default_policy import SHIPPED_MODELS

    recipe = recipe_from_config(load_run_config(args.config))
    shipped = SHIPPED_MODELS / recipe.folder_name()
    with tempfile.TemporaryDirectory(prefix="pretrained-") as scratch:
        built = Path(scratch) / "model"
        check = build_pretrained(built, recipe)
        sha = weights_sha256(built)
        print(f"{recipe.folder_name()}: {check}\nsha256 {sha}")
        if args.write:
            shutil.rmtree(shipped, ignore_errors=True)
            shutil.copytree(built, shipped)
            write_recipe(shipped, recipe, check)
            print(f"wrote {shipped}")
            return 0
    expected = weights_sha256(shipped)
    print(f"shipped sha256 {expected}: {'identical' if expected == sha else 'DIFFERENT'}")
    return 0 if expected == sha else 1


if __name__ == "__main__":
    sys.exit(main())
