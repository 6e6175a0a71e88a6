"""The allocator setting: applied at import, left alone on request, and what it is for:
repeated scoring passes stop faulting their memory back in."""

import json
import os
import subprocess
import sys

import pytest

# Scores the same batch six times and reports the minor page faults of the last four.
PROGRAM = """
import json, resource, torch, pixelcnn, pixelcnn.allocator as allocator
torch.manual_seed(0)
model = pixelcnn.create("gated", (1, 28, 28), levels=256).eval()
model.scoring_chunk_bytes = None  # whole batches: the allocator alone is under test
images = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8)
with torch.no_grad():
    for _ in range(2):
        model.log_prob(images)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(4):
        model.log_prob(images)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"applied": allocator.keep_freed_memory(), "faults": faults}))
"""


def run(malloc: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PIXELCNN_MALLOC"}
    if malloc is not None:
        env["PIXELCNN_MALLOC"] = malloc
    env["OMP_NUM_THREADS"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_memory_is_kept_unless_the_system_allocator_is_asked_for():
    kept, system = run(None), run("system")
    assert kept["applied"] is True and system["applied"] is False
    # four passes over 16 images: glibc's own thresholds fault in thousands of pages
    assert system["faults"] > 2000
    assert kept["faults"] < system["faults"] / 5
