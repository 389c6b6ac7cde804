"""Test-set likelihood reached on a fixed wall-clock training budget.

Each configuration trains on dynamically binarized MNIST (all 60,000 training
images) until its time budget runs out (checked at epoch ends: an epoch that
would overrun it is not started), then the final model is evaluated on the
binarized test set (binarized once, seed 0) with the importance-weighted bound:
test NLL in nats, K samples per image.

The reference (benchmarks/reference_vae.py) trains its own way, on grey
images with a sigmoid decoder, and is evaluated the same way as the package's
models, its decoder's probabilities turned into logits.

    python benchmarks/likelihood.py --minutes 10 --configs dense                 # the CPU target
    python benchmarks/likelihood.py --minutes 10 --configs conv reference --test-images 2000

For scale, the literature on this protocol (test NLL estimated with K = 5000):
Burda et al. 2015, Table 1, one stochastic layer: VAE 86.76 nats, IWAE trained
with k = 50 84.78; Kingma et al. 2016, convolutional VAE with a diagonal
Gaussian posterior 81.08 nats.
"""

import argparse
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from keras import layers, ops  # noqa: E402

import reference_vae  # noqa: E402
import vae_keras as vk  # noqa: E402

# The package's configurations. "dense" is the recommended CPU configuration: an MLP
# runs many more epochs per minute than a convolutional net, which matters more
# than the architecture's inductive bias at a 10-minute budget.
CONFIGS = {
    "dense": dict(latent_dim=32, architecture="dense", hidden_units=(512, 256)),
    "dense_z16": dict(latent_dim=16, architecture="dense", hidden_units=(512, 256)),
    "conv": dict(latent_dim=32, architecture="conv", filters=(32, 64), hidden_units=(256,)),
}


class TimeBudget(keras.callbacks.Callback):
    """Stops training before an epoch that would end past the budget."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()
        self.epochs = 0

    def on_epoch_end(self, epoch, logs=None):
        self.epochs += 1
        elapsed = time.perf_counter() - self.start
        if elapsed + elapsed / self.epochs > self.seconds:
            self.model.stop_training = True


def logits_of(decoder):
    """Wrap a sigmoid decoder so it outputs logits, for the package's evaluation."""
    codes = keras.Input(shape=decoder.input_shape[1:])
    probabilities = ops.clip(decoder(codes), 1e-7, 1 - 1e-7)
    logits = layers.Lambda(lambda p: ops.log(p) - ops.log1p(-p))(probabilities)
    return keras.Model(codes, logits)


def train(name, images, seconds, batch_size, seed):
    keras.utils.set_random_seed(seed)
    budget = TimeBudget(seconds)
    if name == "reference":
        model = reference_vae.build_reference()
        model.fit(images, epochs=10_000, batch_size=reference_vae.BATCH_SIZE, verbose=0,
                  callbacks=[budget])
        evaluated = vk.VAE(model.encoder, logits_of(model.decoder))
    else:
        model = vk.VAE(**CONFIGS[name])
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        model.fit(vk.make_dataset(images, batch_size, binarize=True, seed=seed), epochs=10_000,
                  verbose=0, callbacks=[budget])
        evaluated = model
    return evaluated, budget.epochs, time.perf_counter() - budget.start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--configs", nargs="+", default=["dense", "conv", "reference"],
                        choices=list(CONFIGS) + ["reference"])
    parser.add_argument("--samples", type=int, default=1000, help="K for the IWAE bound")
    parser.add_argument("--test-images", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    (x_train, _), (x_test, _) = vk.load_mnist(args.data_dir)
    test = vk.data.binarize(x_test[:args.test_images], seed=0)
    rows = []
    for name in args.configs:
        model, epochs, seconds = train(name, x_train, args.minutes * 60, args.batch_size, args.seed)
        started = time.perf_counter()
        nll = vk.evaluation.negative_log_likelihood(model, test, num_samples=args.samples, seed=0)
        elbo = model.elbo(test, seed=0)
        rows.append((name, epochs, seconds, elbo, nll, time.perf_counter() - started))
        print(f"{name}: {epochs} epochs in {seconds:.0f} s, test ELBO {elbo:.2f}, "
              f"NLL {nll['nll_nats']:.2f} nats", flush=True)

    print(f"\nTest NLL after {args.minutes:g} minutes of training, dynamically binarized MNIST, "
          f"IWAE K={args.samples} on {len(test):,} test images\n")
    print("| configuration | epochs | training s | test ELBO | test NLL (nats) | bits/dim | eval s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, epochs, seconds, elbo, nll, eval_seconds in rows:
        config = CONFIGS.get(name, {"architecture": "reference conv, latent 2"})
        label = f"{name} ({', '.join(f'{k}={v}' for k, v in config.items())})"
        print(f"| {label} | {epochs} | {seconds:.0f} | {elbo:.2f} | {nll['nll_nats']:.2f} | "
              f"{nll['bits_per_dim']:.4f} | {eval_seconds:.0f} |")
    print("\nLiterature (test K=5000): Burda et al. 2015, one stochastic layer, VAE 86.76, "
          "IWAE (k=50) 84.78; Kingma et al. 2016 conv VAE (diagonal posterior) 81.08 nats.")


if __name__ == "__main__":
    main()
