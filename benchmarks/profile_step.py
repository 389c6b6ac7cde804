"""Where a training step's time goes: TensorFlow's profiler, summed by op type.

Traces a few compiled training steps (fixed batch, after warm-up) of the
reference and of the package's VAE at the same architecture, reads the
profiler's XSpace protobuf, and prints the share of CPU op time per op type
(convolution back-propagation, matmul, element-wise work...). This is the
measurement behind the defaults in vae_keras/performance.py.

    python benchmarks/profile_step.py [--steps 20] [--precision mixed]
"""

import argparse
import collections
import os
import pathlib
import re
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402

import reference_vae  # noqa: E402
import vae_keras as vk  # noqa: E402


# TensorFlow op events are named "op_name:OpType"; containers such as
# "ExecutorState::Process" or "EagerLocalExecute: __inference_..." do not match.
OP_EVENT = re.compile(r"^[^:\s]+:([A-Za-z_]\w*)$")


def op_times(logdir):
    """Total microseconds per TensorFlow op type in the trace under ``logdir``."""
    totals = collections.Counter()
    for path in pathlib.Path(logdir).rglob("*.xplane.pb"):
        space = xplane_pb2.XSpace.FromString(path.read_bytes())
        for plane in space.planes:
            if not plane.name.startswith("/host:CPU"):
                continue
            names = {key: meta.name for key, meta in plane.event_metadata.items()}
            for line in plane.lines:
                for event in line.events:
                    match = OP_EVENT.match(names.get(event.metadata_id, ""))
                    if match:
                        totals[match.group(1)] += event.duration_ps / 1e6
    return totals


def profile(model, batch, steps):
    step = tf.function(model.train_step)
    for _ in range(3):
        step(batch)
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(steps):
            logs = step(batch)
        float(logs["loss"])
        tf.profiler.experimental.stop()
        return op_times(logdir)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--precision", default="float32", choices=["float32", "mixed"])
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    (x_train, _), _ = vk.load_mnist()
    batch = tf.constant(x_train[:reference_vae.BATCH_SIZE])
    keras.utils.set_random_seed(0)
    reference = reference_vae.build_reference()
    reference.optimizer.build(reference.trainable_variables)
    vk.performance.set_precision(args.precision)
    package = reference_vae.build_package_model()
    package.compile(optimizer=keras.optimizers.Adam())
    package.optimizer.build(package.trainable_variables)
    results = {"reference": profile(reference, batch, args.steps),
               "package": profile(package, batch, args.steps)}
    op_types = sorted(set().union(*results.values()),
                      key=lambda op: -max(r.get(op, 0) for r in results.values()))
    print(f"\nCPU op time per training step (ms, summed over threads), batch {reference_vae.BATCH_SIZE}, "
          f"{args.steps} profiled steps, package precision {args.precision}\n")
    print("| op type | reference | share | package | share |")
    print("| --- | ---: | ---: | ---: | ---: |")
    totals = {name: sum(r.values()) for name, r in results.items()}
    for op in op_types[:args.top]:
        cells = []
        for name in ("reference", "package"):
            value = results[name].get(op, 0) / 1e3 / args.steps
            cells += [f"{value:.2f}", f"{100 * results[name].get(op, 0) / totals[name]:.0f}%"]
        print(f"| {op} | " + " | ".join(cells) + " |")
    print(f"| all ops | {totals['reference'] / 1e3 / args.steps:.2f} | 100% | "
          f"{totals['package'] / 1e3 / args.steps:.2f} | 100% |")


if __name__ == "__main__":
    main()
