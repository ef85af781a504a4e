"""One rank of the distributed-training test (tests/test_train_ddp.py), started by torchrun:

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/ddp_worker.py OUT ARGS...

runs `flowcodec train ARGS...` with two spies on the loop, which write to OUT/rank{RANK}.jsonl:
after every step, a digest of the crops this rank drew and of its parameters; and every
`save_checkpoint` call this rank made. The test compares the ranks' files.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

from flowcodec_cli.training import loop


def digest(tensors) -> str:
    """sha256 of the tensors' bytes: equal digests, bitwise equal tensors."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def spy(record) -> None:
    """Wrap the loop's train_step and save_checkpoint so that each call is recorded."""
    train_step, save_checkpoint = loop.train_step, loop.save_checkpoint

    def recorded_step(model, optimizer, args, step, draw, rng, net=None, time_spent=0.0):
        crops = []

        def recorded_draw(rng):
            x, side = draw(rng)
            crops.append(digest([x]))
            return x, side
        stats = train_step(model, optimizer, args, step, recorded_draw, rng, net, time_spent)
        record({"step": step + 1, "crops": crops[0], "params": digest(model.parameters())})
        return stats

    def recorded_save(path, model, optimizer, step, *rest):
        record({"saved": step})
        return save_checkpoint(path, model, optimizer, step, *rest)

    loop.train_step, loop.save_checkpoint = recorded_step, recorded_save


def main() -> None:
    out, argv = sys.argv[1], sys.argv[2:]
    path = os.path.join(out, f"rank{os.environ['RANK']}.jsonl")

    def record(entry: dict) -> None:
        with open(path, "a") as f:
            f.write(json.dumps(entry) + "\n")
    spy(record)
    loop.main(argv)


if __name__ == "__main__":
    main()
