"""TensorFlow's C++ start-up lines are filtered by TF_CPP_MIN_LOG_LEVEL; errors still show."""

import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT
from vae_keras import _quiet_import

INFO = b"I0000 00:00:1795267977.928827    8926 port.cc:153] oneDNN custom operations are on.\n"
WARNING = b"W0000 00:00:1795267977.928827    8926 x.cc:1] a warning\n"
ERROR = b"E0000 00:00:1795268425.951977   14233 cuda_platform.cc:52] failed call to cuInit\n"
OLD_FORMAT_INFO = (b"2025-09-17 14:44:05.157831: I external/local_xla/xla/tsl/cuda/"
                   b"cudart_stub.cc:32] Could not find cuda drivers on your machine\n")
NOTICE = (b"WARNING: All log messages before absl::InitializeLog() is called are written "
          b"to STDERR\n")


@pytest.mark.parametrize("level, kept", [
    (0, [INFO, WARNING, ERROR, OLD_FORMAT_INFO, NOTICE]),
    (1, [WARNING, ERROR]),
    (2, [ERROR]),
    (3, []),
])
def test_lines_below_the_level_are_dropped_and_the_rest_kept(level, kept):
    python_lines = [b"Traceback (most recent call last):\n", b"  File \"x.py\", line 1\n",
                    b"UserWarning: something\n", b"To enable the following instructions: AVX2\n"]
    lines = [INFO, WARNING, ERROR, OLD_FORMAT_INFO, NOTICE] + python_lines
    assert [line for line in lines if _quiet_import.keep_line(line, level)] == kept + python_lines


def test_a_known_harmless_error_notice_is_dropped_whenever_the_filter_is_on():
    # oneDNN's DT_BOOL notice reports no error; other ERROR lines pass at levels 1 and 2.
    notice = (b"E0000 00:00:1796.5   77 util.cc:131] oneDNN supports DT_BOOL only on platforms "
              b"with AVX-512. Falling back to the default Eigen-based implementation\n")
    assert _quiet_import.keep_line(notice, 0)
    for level in (1, 2):
        assert not _quiet_import.keep_line(notice, level)
        assert _quiet_import.keep_line(ERROR, level)


def test_an_error_before_a_crash_still_reaches_stderr():
    # The filter is its own process, so what the crashing process wrote still comes out.
    script = (
        "import os, runpy, sys\n"
        "quiet = runpy.run_path(sys.argv[1])\n"
        "with quiet['filtered_stderr'](2):\n"
        f"    os.write(2, {INFO!r} + {NOTICE!r} + {ERROR!r})\n"
        "    os.abort()\n"
    )
    result = subprocess.run([sys.executable, "-c", script, _quiet_import.__file__],
                            capture_output=True, timeout=60)
    assert result.returncode != 0
    assert result.stderr == ERROR


def test_importing_the_package_prints_no_tensorflow_start_up_lines():
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", "import vae_keras; print('ok')"],
                            capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=600)
    assert result.returncode == 0 and result.stdout == "ok\n", result.stderr[-2000:]
    for line in ["oneDNN custom operations", "Could not find cuda drivers", "InitializeLog"]:
        assert line not in result.stderr


def test_the_first_likelihood_evaluation_prints_no_xla_lines_after_an_early_tensorflow_import():
    # As in a notebook that imports keras (and so TensorFlow) before vae_keras: TensorFlow
    # then logs at INFO level, and compiling the likelihood kernel logs XLA's start-up.
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    script = ("import tensorflow, numpy as np, vae_keras as vk; "
              "vae = vk.VAE(latent_dim=2, image_shape=(4, 4, 1), hidden_units=(8,)); "
              "images = (np.arange(32).reshape(2, 4, 4, 1) % 2).astype('float32'); "
              "print(np.isfinite(vae.nll(images, num_samples=3, seed=0)))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=REPO_ROOT, env=env, timeout=600)
    assert result.returncode == 0 and result.stdout == "True\n", result.stderr[-2000:]
    for line in ["XLA service", "Compiled cluster using XLA", "StreamExecutor"]:
        assert line not in result.stderr, result.stderr[-2000:]
