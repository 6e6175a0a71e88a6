"""The numerical tests hold at a second thread count.

A user's machine has 1, 4 or 64 threads, and a kernel's summation order (so its last bits)
changes with them; every tolerance must hold at any count. The suite runs at the machine's
count; this test runs its numerical tests again, in a fresh process, at another one (1
where the suite has several, else 2): normalization, cached == naive, the float32 forward
agreement, the likelihoods, every image size, chunked and bf16 scoring and the codec's
round trips.
"""

import os
import subprocess
import sys
from pathlib import Path

import torch

TESTS = Path(__file__).resolve().parent
NUMERICAL = [
    "test_normalization.py",
    "test_logistic_mixture.py",
    "test_image_sizes.py",
    "test_chunking.py",
    "test_scoring_precision.py",
    "test_contracts.py::test_every_conditional_sums_to_one",
    "test_contracts.py::test_the_smallest_images_sum_to_one",
    "test_contracts.py::test_cached_sampling_draws_what_naive_sampling_draws",
    "test_contracts.py::test_compression_round_trips_exactly",
    "test_cached_sampling.py::test_cached_and_naive_draw_identical_images",
    "test_cached_sampling.py::test_float32_cached_log_probs_match_a_forward_pass",
    "test_cached_sampling.py::test_teacher_forced_steps_score_known_images_like_a_forward_pass",
]


def other_thread_count() -> int:
    return 1 if torch.get_num_threads() > 1 else 2


def test_the_numerical_tests_hold_at_another_thread_count():
    threads = str(other_thread_count())
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    check = "import torch, sys; sys.exit(torch.get_num_threads() != int(sys.argv[1]))"
    assert subprocess.run([sys.executable, "-c", check, threads], env=env).returncode == 0
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *NUMERICAL],
        cwd=TESTS,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, f"at {threads} threads:\n{run.stdout[-4000:]}{run.stderr[-2000:]}"
    assert " passed" in run.stdout.splitlines()[-1]
