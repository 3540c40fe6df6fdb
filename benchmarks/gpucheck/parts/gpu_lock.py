"""The GPU-lock part: two processes claim a GPU through `orthoreg.devices.claim_gpu` at once (lock
files in a scratch folder), each holding it a few seconds: with 2+ GPUs they must get different ones;
with one, the second must wait for it (or time out), never share it."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

from gpucheck.harness import Context, Deadline, children, finish_cleanly, part, spawn
from orthoreg.devices import LOCK_DIR_ENV

# one claimant: claim a GPU, hold it, say when (arguments: device type, timeout, seconds held)
CLAIMANT = """\
import json, sys, time
import torch
from orthoreg.devices import claim_gpu
count = torch.cuda.device_count() if sys.argv[1] == "cuda" else 1
asked = time.time()
try:
    index = claim_gpu(count, timeout=float(sys.argv[2]))
except RuntimeError as error:
    print(json.dumps({"gpus": count, "asked": asked, "refused": time.time(), "error": str(error)}))
    sys.exit(0)
claimed = time.time()
time.sleep(float(sys.argv[3]))
print(json.dumps({"gpus": count, "asked": asked, "claimed": claimed, "released": time.time(), "index": index}))
"""


def lock_verdict(first: Mapping[str, Any], second: Mapping[str, Any]) -> tuple[bool | None, str]:
    """Whether two claimants behaved as the lock promises (None: they never contended), and what
    happened, in words. `first` is the one that claimed first."""
    if "error" in second:
        return True, f"the first got GPU {first['index']}; the second timed out: {second['error']}"
    if first["index"] != second["index"]:
        return True, f"each got its own GPU: {first['index']} and {second['index']}"
    waited = second["claimed"] - second["asked"]
    if second["asked"] >= first["released"]:
        return None, "the second asked after the first had released its GPU: no contention shown"
    if second["claimed"] >= first["released"] - 0.05:
        return True, f"the second waited {waited:.1f} s for GPU {first['index']} until the first released it"
    return False, f"both held GPU {first['index']} at once"


@part("gpu_lock", "two processes claiming the GPU through the lock at once", weight=15, quick_weight=5)
def gpu_lock(context: Context, record: dict, deadline: Deadline) -> None:
    hold = context.plan.lock_hold
    env = {**context.child_env, LOCK_DIR_ENV: str(context.work / "locks")}
    command = [sys.executable, "-c", CLAIMANT, context.device.type, str(4 * hold), str(hold)]
    with children() as started:
        processes = [spawn(started, command, env) for _ in range(2)]
        answers = [json.loads(finish_cleanly(process, deadline, "a claimant")) for process in processes]
    answers.sort(key=lambda answer: answer.get("claimed", float("inf")))
    ok, verdict = lock_verdict(*answers)
    record.update(gpus=answers[0]["gpus"], ok=ok, verdict=verdict, claimants=answers)
    if not context.cuda:
        record["note"] = "no GPU: the lock was exercised as for one GPU"
