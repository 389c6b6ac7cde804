"""Test-set likelihood reached on a fixed wall-clock training budget, lever by lever.

Each configuration trains on dynamically binarized MNIST for a wall-clock
budget (:class:`vae_keras.TimeBudget`: it stops at the last epoch end that fits
and, where the configuration says so, anneals the learning rate to zero at the
budget's end), then the final model is evaluated on all test images (binarized
once, seed 0) with the importance-weighted bound: test NLL in nats, K samples
per image.

A row with a mixture (``mixture``, ``iwae_k2_mixture``, ``deep_warmup_mixture``,
the recommended one) stops training one minute early, fits a Gaussian mixture to
one code drawn from each training image's posterior (an ex-post learned prior,
notebook 11) with ``vae.fit_prior_mixture``, the code ``vae-keras train --prior
mixture:50`` runs, and evaluates the bound with the model's prior, now the mixture:
the likelihood of the model that ``vae.sample(n)`` then samples from.

The recommended row as one command of the package (the same network, warm-up,
cosine budget and mixture; its training budget is the row's minus the minute kept
for the mixture's fit, and it holds out no validation images)::

    vae-keras train --latent-dim 32 --hidden-units 512,256,256 --warmup-epochs 5 \
        --time-budget 9 --prior mixture:50 --validation-size 0

Training uses all 60,000 training images of the original files (the loader
checks their MD5 sums and warns if a copy differs).

    python benchmarks/likelihood.py --minutes 10 --configs recommended      # the CPU target
    python benchmarks/likelihood.py --minutes 10 --configs ablation         # every lever, in turn
    python benchmarks/likelihood.py --minutes 10 --configs conv reference

A run takes 10-15 minutes a row. Do not edit vae_keras in the checkout it runs
from meanwhile (run it from a copy, with PYTHONPATH pointing there): autograph
reads a function's source file again when it first traces it, and a row's
evaluation, traced after its training, then compiles the edited file against
the old line numbers and fails (seen once, after 10 minutes of training; the
saved model survived: ``--save DIR`` then ``--evaluate-saved DIR``).

For scale, the literature on this protocol (test NLL estimated with K = 5000):
Burda et al. 2015, Table 1, one stochastic layer: VAE 86.76 nats, IWAE trained
with k = 50 84.78; Kingma et al. 2016, convolutional VAE with a diagonal
Gaussian posterior 81.08 nats.
"""

import argparse
import json
import os
import pathlib
import pickle
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers, ops  # noqa: E402

import reference_vae  # noqa: E402
import vae_keras as vk  # noqa: E402
from flops import decoder_flops, matmul_peak_gflops  # noqa: E402

DENSE = dict(latent_dim=32, architecture="dense", hidden_units=(512, 256))
# Each configuration: the model's arguments, then how it trains. Each ablation row
# changes one lever of the row its "lever" names; "recommended" is the winner (the README's
# table, three seeds each for cosine, iwae_k2, mixture and deep_warmup_mixture).
CONFIGS = {
    "baseline": dict(model=DENSE, batch_size=128, learning_rate=1e-3, anneal=None,
                     lever="the 0.1 recommendation: Adam 1e-3, constant, batch 128"),
    "cosine": dict(model=DENSE, batch_size=128, learning_rate=1e-3, anneal="cosine",
                   lever="baseline + cosine decay of the learning rate to 0 at the budget's end"),
    "cosine_lr2e-3": dict(model=DENSE, batch_size=128, learning_rate=2e-3, anneal="cosine",
                          lever="cosine with a peak learning rate of 2e-3"),
    "batch256": dict(model=DENSE, batch_size=256, learning_rate=3e-3, anneal="cosine",
                     lever="cosine_lr2e-3 with batch 256, learning rate 3e-3"),
    "iwae_k2_lr2e-3": dict(model=dict(DENSE, importance_samples=2), batch_size=128,
                           learning_rate=2e-3, anneal="cosine",
                           lever="cosine_lr2e-3 + IWAE training objective, k = 2"),
    "wide": dict(model=dict(DENSE, hidden_units=(1024, 512)), batch_size=128, learning_rate=2e-3,
                 anneal="cosine", lever="cosine_lr2e-3 + wider MLP, 1024-512"),
    "iwae_k2": dict(model=dict(DENSE, importance_samples=2), batch_size=128, learning_rate=1e-3,
                    anneal="cosine", lever="cosine + IWAE training objective, k = 2"),
    "warmup": dict(model=DENSE, batch_size=128, learning_rate=1e-3, anneal="cosine",
                   warmup_epochs=5, lever="cosine + KL warm-up over 5 epochs"),
    # An ex-post learned prior (notebook 11): a Gaussian mixture fitted by EM to one code
    # drawn from q(z|x) per training image, then used as p(z) in the bound. The EM fit
    # is part of the budget: training stops MIXTURE_RESERVE_MINUTES early to pay for it.
    "mixture": dict(model=DENSE, batch_size=128, learning_rate=1e-3, anneal="cosine",
                    mixture_components=50,
                    lever="cosine + ex-post Gaussian mixture prior, 50 components"),
    "iwae_k2_mixture": dict(model=dict(DENSE, importance_samples=2), batch_size=128,
                            learning_rate=1e-3, anneal="cosine", mixture_components=50,
                            lever="mixture + IWAE training objective, k = 2"),
    "conv": dict(model=dict(latent_dim=32, architecture="conv", filters=(32, 64),
                            hidden_units=(256,)),
                 batch_size=128, learning_rate=2e-3, anneal="cosine",
                 lever="convolutional 32-64, dense 256, cosine, lr 2e-3"),
}
# Depth at the cheap end: a third hidden layer of 256 adds 12% to a step's arithmetic,
# where "wide" doubled it. Each deep row is the row before it plus one lever.
CONFIGS["deep"] = dict(CONFIGS["cosine"], model=dict(DENSE, hidden_units=(512, 256, 256)),
                       lever="cosine + a deeper MLP, 512-256-256")
CONFIGS["deep_warmup"] = dict(CONFIGS["deep"], warmup_epochs=5,
                              lever="deep + KL warm-up over 5 epochs")
CONFIGS["deep_warmup_mixture"] = dict(
    CONFIGS["deep_warmup"], mixture_components=50,
    lever="deep_warmup + ex-post Gaussian mixture prior, 50 components")
# A prior that trains with the model (Tomczak & Welling 2018) in place of the ex-post mixture:
# K pseudo-inputs started from K training images, as in notebook 11, section 7. Each step also
# encodes the K pseudo-inputs, so the budget buys fewer epochs.
CONFIGS["deep_warmup_vamp"] = dict(
    CONFIGS["deep_warmup"], vamp_components=100,
    lever="deep_warmup + a VampPrior of 100 pseudo-inputs, trained with the model")
# Two stochastic layers (Burda et al. 2015; Tomczak & Welling's HVAE): the code's prior is a
# second VAE over it, a top code of 16 dimensions with two tanh layers of 256 each way, trained
# with the model (vk.priors.HierarchicalPrior). The bound is then the two-layer IWAE bound.
CONFIGS["deep_warmup_hierarchical"] = dict(
    CONFIGS["deep_warmup"], hierarchical_top_dim=16,
    lever="deep_warmup + a second stochastic layer (16-d top code), trained with the model")
# The IWAE objective on the recommended network, with the mixture after training.
CONFIGS["deep_warmup_iwae_k2_mixture"] = dict(
    CONFIGS["deep_warmup_mixture"], model=dict(CONFIGS["deep"]["model"], importance_samples=2),
    lever="deep_warmup_mixture + IWAE training objective, k = 2")
CONFIGS["recommended"] = CONFIGS["deep_warmup_mixture"]
MIXTURE_RESERVE_MINUTES = 1.0
ABLATION = ["baseline", "cosine", "cosine_lr2e-3", "batch256", "iwae_k2_lr2e-3", "wide", "iwae_k2",
            "warmup", "mixture", "deep", "deep_warmup", "iwae_k2_mixture",
            "deep_warmup_mixture"]


def logits_of(decoder):
    """Wrap a sigmoid decoder so it outputs logits, for the package's evaluation."""
    codes = keras.Input(shape=decoder.input_shape[1:])
    probabilities = ops.clip(decoder(codes), 1e-7, 1 - 1e-7)
    logits = layers.Lambda(lambda p: ops.log(p) - ops.log1p(-p))(probabilities)
    return keras.Model(codes, logits)


def train(name, images, minutes, seed):
    """Train configuration ``name`` for ``minutes``.

    Returns the model to evaluate (with its prior: N(0, I), or for a
    ``mixture_components`` row the mixture fitted to it) and its TimeBudget.
    """
    keras.utils.set_random_seed(seed)
    if name == "reference":
        budget = vk.TimeBudget(minutes, anneal=None)
        model = reference_vae.build_reference()
        model.fit(images, epochs=100_000, batch_size=reference_vae.BATCH_SIZE, verbose=0,
                  callbacks=[budget])
        return vk.VAE(model.encoder, logits_of(model.decoder)), budget
    config = CONFIGS[name]
    components = config.get("mixture_components")
    training_minutes = minutes - MIXTURE_RESERVE_MINUTES if components else minutes
    budget = vk.TimeBudget(training_minutes, anneal=config["anneal"])
    callbacks = [budget]
    if config.get("warmup_epochs"):
        callbacks.append(vk.KLWarmup(config["warmup_epochs"]))
    prior = None
    if config.get("vamp_components"):
        starts = np.random.default_rng(seed).choice(len(images), config["vamp_components"],
                                                    replace=False)
        prior = vk.priors.VampPrior(config["vamp_components"], initial_images=images[starts],
                                    seed=seed)
    if config.get("hierarchical_top_dim"):
        prior = vk.priors.HierarchicalPrior(config["hierarchical_top_dim"], seed=seed)
    model = vk.VAE(**config["model"], prior=prior)
    model.compile(optimizer=keras.optimizers.Adam(config["learning_rate"]))
    model.fit(vk.make_dataset(images, config["batch_size"], binarize=True, seed=seed),
              epochs=100_000, verbose=0, callbacks=callbacks)
    if components:
        started = time.perf_counter()
        # The fit of `vae-keras train --prior mixture:50`: one code per posterior, then EM.
        model.fit_prior_mixture(images, components, seed=seed)
        fit_seconds = time.perf_counter() - started
        budget.seconds += fit_seconds  # the fit counts as training time
        print(f"{name}: mixture of {components} fitted in {fit_seconds:.0f} s", flush=True)
    return model, budget


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--configs", nargs="+", default=["recommended"],
                        help=f"names among {list(CONFIGS) + ['reference']}, or 'ablation'")
    parser.add_argument("--samples", type=int, default=1000, help="K for the IWAE bound")
    parser.add_argument("--test-images", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--save", default=None,
                        help="folder to save each trained model and its training figures in")
    parser.add_argument("--train-only", action="store_true",
                        help="train and --save, evaluate later with --evaluate-saved")
    parser.add_argument("--evaluate-saved", default=None,
                        help="evaluate the models a --train-only run saved in this folder")
    args = parser.parse_args()
    if args.train_only and not args.save:
        parser.error("--train-only needs --save FOLDER")
    names = [n for name in args.configs for n in (ABLATION if name == "ablation" else [name])]
    unknown = [n for n in names if n not in CONFIGS and n != "reference"]
    if unknown:
        parser.error(f"unknown configurations {unknown}; choose among {list(CONFIGS)}, "
                     f"reference, ablation")

    (x_train, _), (x_test, _) = vk.load_mnist(args.data_dir)
    test = vk.data.binarize(x_test[:args.test_images], seed=0)
    print(f"{len(x_train):,} training images, {len(test):,} test images; "
          f"{vk.performance.describe_defaults()}", flush=True)
    # A wall-clock budget moves with the machine: every row carries the float32 matmul peak
    # measured on the machine that ran it (the best of a measurement before and after training).
    peak = matmul_peak_gflops()
    print(f"float32 matmul peak {peak:.0f} GFLOP/s", flush=True)
    rows = []
    for name in names:
        if args.evaluate_saved:
            folder = pathlib.Path(args.evaluate_saved)
            model = keras.saving.load_model(folder / f"{name}.keras")
            trained = json.loads((folder / f"{name}.json").read_text())
            # Models saved before the mixture was part of the model kept it beside them.
            mixture_file = folder / f"{name}.mixture.pkl"
            if mixture_file.exists():
                model.set_prior(vk.priors.GaussianMixture.from_sklearn(
                    pickle.loads(mixture_file.read_bytes())))
        else:
            model, budget = train(name, x_train, args.minutes, args.seed)
            trained = {"epochs": budget.epochs, "seconds": budget.seconds,
                       "images_per_second": budget.epochs * len(x_train) / budget.seconds}
            trained["matmul_peak_gflops"] = max(peak, matmul_peak_gflops())
            print(f"{name}: {budget.epochs} epochs in {budget.seconds:.0f} s "
                  f"({trained['images_per_second']:,.0f} images/s; float32 matmul peak "
                  f"{trained['matmul_peak_gflops']:.0f} GFLOP/s)", flush=True)
            if args.save:
                folder = pathlib.Path(args.save)
                folder.mkdir(parents=True, exist_ok=True)
                model.save(folder / f"{name}.keras")  # with its prior
                (folder / f"{name}.json").write_text(json.dumps(trained))
            if args.train_only:
                continue
        started = time.perf_counter()
        nll = vk.evaluation.negative_log_likelihood(model, test, num_samples=args.samples, seed=0)
        eval_seconds = time.perf_counter() - started
        # With a mixture prior, the ELBO of g(z) p(x|z), its KL term sampled at the drawn code.
        elbo = model.elbo(test, seed=0)
        eval_gflops = decoder_flops(model.decoder) * args.samples * len(test) / eval_seconds / 1e9
        # Latent dimensions the model uses (Burda et al.'s active units, on the test images).
        active = int(vk.aggregate.code_statistics(*model.encode(test))["active"].sum())
        rows.append((name, trained["epochs"], trained["images_per_second"], elbo, nll,
                     eval_seconds, eval_gflops, active, trained.get("matmul_peak_gflops", peak)))
        print(f"{name}: test ELBO {elbo:.2f}, NLL {nll['nll_nats']:.2f} nats "
              f"(evaluated in {eval_seconds:.0f} s, {eval_gflops:.0f} GFLOP/s), "
              f"{active} active latent dimensions", flush=True)
    if args.train_only:
        return

    print(f"\nTest NLL after {args.minutes:g} minutes of training, dynamically binarized MNIST, "
          f"IWAE K={args.samples} on {len(test):,} test images\n")
    print("| configuration | lever | epochs | images/s | test ELBO | test NLL (nats) | "
          "bits/dim | eval s | eval GFLOP/s | active units | matmul peak GFLOP/s |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, epochs, speed, elbo, nll, eval_seconds, eval_gflops, active, row_peak in rows:
        lever = CONFIGS[name]["lever"] if name in CONFIGS else "reference conv, latent 2, constant lr"
        print(f"| {name} | {lever} | {epochs} | {speed:,.0f} | {elbo:.2f} | "
              f"{nll['nll_nats']:.2f} | {nll['bits_per_dim']:.4f} | {eval_seconds:.0f} | "
              f"{eval_gflops:.0f} | {active} | {row_peak:.0f} |")
    print("\nLiterature (test K=5000): Burda et al. 2015, one stochastic layer, VAE 86.76, "
          "IWAE (k=50) 84.78; Kingma et al. 2016 conv VAE (diagonal posterior) 81.08 nats.")


if __name__ == "__main__":
    main()
