"""The command line: ``vae-keras train | evaluate | sample`` (or ``python -m vae_keras``).

``train`` fits a VAE on MNIST or Fashion-MNIST and writes to its output folder:

- ``model.keras``: the model with the best validation loss (saved whenever it
  improves, so Ctrl-C or a crash keeps the best model so far);
- ``checkpoint.keras`` and ``checkpoint.json``: the latest epoch's model,
  optimizer and history, from which ``train --output DIR --resume`` continues;
- ``metrics.json``: the settings, per-epoch training and validation losses, and
  the final test ELBO and importance-weighted NLL (nats and bits/dim);
- ``samples.png``, ``reconstructions.png``, ``loss_curves.png``, and with
  ``--latent-dim 2`` also ``latent_scatter.png`` and ``manifold.png``.
"""

import argparse
import json
import math
import pathlib
import sys
import time

import numpy as np

EXIT_INTERRUPTED = 130


def _add_data_arguments(parser):
    parser.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist"],
                        help="which dataset (default: mnist)")
    parser.add_argument("--data-dir", default=None,
                        help="folder with mnist/ and fashion-mnist/ IDX files "
                             "(default: $VAE_KERAS_DATA, else Keras downloads)")


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="vae-keras", description="Train, evaluate and sample Variational Autoencoders.")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a VAE and write model, metrics and figures",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_data_arguments(train)
    train.add_argument("--architecture", default="dense", choices=["dense", "conv"])
    train.add_argument("--latent-dim", type=int, default=16)
    train.add_argument("--likelihood", default="bernoulli", choices=["bernoulli", "gaussian"])
    train.add_argument("--beta", type=float, default=1.0, help="final weight of the KL term")
    train.add_argument("--warmup-epochs", type=float, default=0.0,
                       help="raise beta linearly from 0 over this many epochs (0: no warm-up)")
    train.add_argument("--cycle-epochs", type=float, default=0.0,
                       help="cyclical KL annealing with cycles of this many epochs (0: off)")
    train.add_argument("--epochs", type=int, default=None, help="epochs in all (default 30)")
    train.add_argument("--batch-size", type=int, default=128)
    train.add_argument("--learning-rate", type=float, default=1e-3)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--binarize", default="auto", choices=["auto", "yes", "no"],
                       help="dynamic binarization of training images; auto = yes for bernoulli")
    train.add_argument("--train-size", type=int, default=None,
                       help="use only the first N training images (quick runs)")
    train.add_argument("--validation-size", type=int, default=5000,
                       help="images held out from the training set for validation")
    train.add_argument("--test-size", type=int, default=None,
                       help="evaluate on the first N test images (default: all)")
    train.add_argument("--iwae-samples", type=int, default=1000,
                       help="importance samples K for the test NLL (0 skips it)")
    train.add_argument("--output", default=None, help="output folder (default: runs/<settings>)")
    train.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2],
                       help="Keras fit verbosity: 1 = progress bar")
    train.add_argument("--strategy", default="default", choices=["default", "mirrored",
                                                                 "multi_worker"],
                       help="tf.distribute strategy: mirrored = all GPUs of this machine, "
                            "multi_worker = several machines (set TF_CONFIG on each)")
    train.add_argument("--precision", default="float32", choices=["float32", "mixed"],
                       help="mixed = float16 on GPU, bfloat16 on CPU; losses stay float32")
    train.add_argument("--resume", action="store_true",
                       help="continue the interrupted run in --output from its last epoch, "
                            "with its saved settings (--epochs may extend it)")

    evaluate = commands.add_parser("evaluate", help="test ELBO and NLL of a saved model",
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    evaluate.add_argument("model", help="path to a .keras file written by train")
    _add_data_arguments(evaluate)
    evaluate.add_argument("--iwae-samples", type=int, default=1000)
    evaluate.add_argument("--test-size", type=int, default=None)
    evaluate.add_argument("--binarize", default="auto", choices=["auto", "yes", "no"],
                          help="binarize the test set once (seed 0); auto = yes for bernoulli")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--json", default=None, help="also write the results to this file")

    sample = commands.add_parser("sample", help="a PNG grid of images drawn from the prior",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sample.add_argument("model", help="path to a .keras file written by train")
    sample.add_argument("--num-samples", type=int, default=64)
    sample.add_argument("--columns", type=int, default=8)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--output", default="samples.png")
    return parser


def _check_arguments(parser, args):
    """Turn bad numbers into argparse errors (one line, exit 2) before TensorFlow loads."""
    positive = ["latent_dim", "epochs", "batch_size", "num_samples", "columns"]
    for name in positive:
        value = getattr(args, name, None)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    for name in ["train_size", "test_size"]:
        value = getattr(args, name, None)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    for name in ["iwae_samples", "validation_size", "warmup_epochs", "cycle_epochs", "beta"]:
        value = getattr(args, name, None)
        if value is not None and value < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0, got {value}")
    if getattr(args, "learning_rate", 1.0) <= 0:
        parser.error("--learning-rate must be > 0")
    if getattr(args, "warmup_epochs", 0) and getattr(args, "cycle_epochs", 0):
        parser.error("choose --warmup-epochs or --cycle-epochs, not both")


def _uses_binarization(choice, likelihood):
    return choice == "yes" or (choice == "auto" and likelihood == "bernoulli")


def _save_figure(figure, path):
    import matplotlib.pyplot as plt

    figure.savefig(path, bbox_inches="tight")
    plt.close(figure)


def _write_figures(model, output, test_images, test_labels, history, seed):
    from vae_keras import plotting

    _save_figure(plotting.image_grid(model.sample(64, seed=seed), ncols=8,
                                     title="samples from the prior"), output / "samples.png")
    _save_figure(plotting.reconstruction_rows(test_images[:10], model.reconstruct(test_images[:10])),
                 output / "reconstructions.png")
    if history:
        _save_figure(plotting.loss_curves(history), output / "loss_curves.png")
    if model.latent_dim == 2:
        _save_figure(plotting.latent_scatter(model.encode_mean(test_images), test_labels,
                                             title="test set, posterior means"),
                     output / "latent_scatter.png")
        _save_figure(plotting.latent_manifold(model, grid_size=20), output / "manifold.png")


def _evaluate(model, images, iwae_samples, seed):
    results = {"elbo": model.elbo(images, seed=seed), "num_images": int(len(images))}
    if iwae_samples:
        from vae_keras import evaluation

        results.update(evaluation.negative_log_likelihood(
            model, images, num_samples=iwae_samples, seed=seed))
    return results


def _load_training_data(args):
    import vae_keras as vk

    (x_train, _), (x_test, y_test) = vk.data.load_dataset(args.dataset, args.data_dir)
    if args.train_size:
        x_train = x_train[:args.train_size + args.validation_size]
    if args.validation_size >= len(x_train):
        raise ValueError(f"--validation-size {args.validation_size} leaves no training images "
                         f"out of {len(x_train)}; lower it.")
    split = len(x_train) - args.validation_size
    x_train, x_validation = x_train[:split], x_train[split:]
    x_test, y_test = x_test[:args.test_size], y_test[:args.test_size]
    x_test_evaluated = x_test
    if _uses_binarization(args.binarize, args.likelihood):
        # Validation and test sets are binarized once, with fixed seeds, as in the literature.
        x_validation = vk.data.binarize(x_validation, seed=args.seed + 1)
        x_test_evaluated = vk.data.binarize(x_test, seed=args.seed + 2)
    return x_train, x_validation, x_test, y_test, x_test_evaluated


def _resume_settings(args, output):
    """The saved run's state, with its settings copied into args (``--epochs`` may extend)."""
    from vae_keras.callbacks import TrainingCheckpoint

    state = TrainingCheckpoint.load_state(output)
    if state is None:
        raise ValueError(f"--resume: {output} holds no checkpoint (checkpoint.json and "
                         f"checkpoint.keras); run without --resume to start a new run.")
    saved = json.loads((output / "metrics.json").read_text())["settings"]
    epochs = args.epochs
    for key, value in saved.items():
        if key not in ("resume", "verbose", "output"):
            setattr(args, key, value)
    args.epochs = epochs or saved["epochs"]
    return state


def _train(args):
    import keras

    import vae_keras as vk

    output = pathlib.Path(args.output or f"runs/{args.dataset}-{args.architecture}-"
                                         f"z{args.latent_dim}-{args.likelihood}")
    state = _resume_settings(args, output) if args.resume else None
    args.epochs = args.epochs or 30
    keras.utils.set_random_seed(args.seed)
    vk.performance.set_precision(args.precision)
    x_train, x_validation, x_test, y_test, x_test_evaluated = _load_training_data(args)
    output.mkdir(parents=True, exist_ok=True)
    metrics = {"settings": vars(args), "status": "running"}
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2))

    strategy = vk.performance.make_strategy(args.strategy)
    with strategy.scope():
        if state is not None:
            model = keras.models.load_model(output / vk.callbacks.TrainingCheckpoint.CHECKPOINT)
        else:
            model = vk.VAE(latent_dim=args.latent_dim, architecture=args.architecture,
                           likelihood=args.likelihood, beta=args.beta, seed=args.seed)
            model.compile(optimizer=keras.optimizers.Adam(args.learning_rate))
    monitor = "val_loss" if len(x_validation) else "loss"
    checkpoint = vk.callbacks.TrainingCheckpoint(
        output, monitor, best=state["best"] if state else float("inf"),
        history=state["history"] if state else None)
    callbacks = []
    if args.warmup_epochs:
        callbacks.append(vk.KLWarmup(args.warmup_epochs, end=args.beta))
    if args.cycle_epochs:
        callbacks.append(vk.CyclicalKLAnnealing(args.cycle_epochs, high=args.beta))
    callbacks.append(checkpoint)  # last: it records what the others logged

    first_epoch = checkpoint.epochs_completed
    print(f"{'Resuming' if state else 'Training'} a {args.architecture} VAE (latent_dim="
          f"{args.latent_dim}, {args.likelihood}, beta={args.beta}) on {len(x_train)} "
          f"{args.dataset} images, epochs {first_epoch + 1}-{args.epochs}, "
          f"{strategy.num_replicas_in_sync} replica(s), {vk.performance.describe_defaults()}; "
          f"writing to {output}/")
    binarize = _uses_binarization(args.binarize, args.likelihood)
    started, status, message = time.time(), "completed", None
    try:
        # Each epoch's batches are a pure function of (seed, epoch), so a resumed run
        # sees exactly the batches an uninterrupted one would. One dataset holds the
        # remaining epochs back to back (one iterator: no per-epoch stall), unless an
        # execution of several steps would straddle two epochs; then one per epoch.
        batches = math.ceil(len(x_train) / args.batch_size)
        if batches % model.steps_per_execution == 0:
            segments = [range(first_epoch, args.epochs)] if first_epoch < args.epochs else []
        else:
            segments = [range(epoch, epoch + 1) for epoch in range(first_epoch, args.epochs)]
        for epochs in segments:
            data = vk.make_dataset(x_train, args.batch_size, binarize=binarize, seed=args.seed,
                                   epoch=epochs)
            # VAE.fit reads the epochs the dataset holds and sets steps_per_epoch.
            model.fit(data, initial_epoch=epochs.start, epochs=epochs.stop,
                      callbacks=callbacks, verbose=args.verbose,
                      validation_data=x_validation if len(x_validation) else None)
    except KeyboardInterrupt:
        status, message = "interrupted", "Interrupted (Ctrl-C)."
    except FloatingPointError as error:
        status, message = "stopped_nan", str(error)
    train_seconds = time.time() - started

    model_path = output / vk.callbacks.TrainingCheckpoint.MODEL
    metrics.update(status=status, train_seconds=round(train_seconds, 1),
                   epochs_completed=checkpoint.epochs_completed, history=checkpoint.history)
    if model_path.exists():
        best = keras.models.load_model(model_path)
        if status == "completed":
            print(f"Evaluating the best model on {len(x_test)} test images "
                  f"(IWAE with K={args.iwae_samples})...")
            metrics["test"] = _evaluate(best, x_test_evaluated, args.iwae_samples, args.seed)
        _write_figures(best, output, x_test, y_test, checkpoint.history, args.seed)
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))

    if status != "completed":
        saved = f"the best model so far is in {model_path}" if model_path.exists() else \
            "no epoch finished, so no model was saved"
        print(f"{message} Stopped after {checkpoint.epochs_completed} epochs; {saved}. "
              f"Continue with: vae-keras train --output {output} --resume", file=sys.stderr)
        return EXIT_INTERRUPTED if status == "interrupted" else 1
    test = metrics["test"]
    line = f"Test ELBO {test['elbo']:.2f} nats"
    if "nll_nats" in test:
        line += f", NLL {test['nll_nats']:.2f} nats ({test['bits_per_dim']:.4f} bits/dim)"
    print(f"{line}. Wrote {output}/ (model.keras, metrics.json, figures).")
    return 0


def _load_model(path):
    import keras

    path = pathlib.Path(path)
    if path.suffix != ".keras" or not path.is_file():
        raise ValueError(f"{path} is not a .keras file; pass the model.keras that "
                         f"`vae-keras train` wrote.")
    return keras.models.load_model(path)


def _evaluate_command(args):
    import keras

    import vae_keras as vk

    keras.utils.set_random_seed(args.seed)
    model = _load_model(args.model)
    _, (x_test, _) = vk.data.load_dataset(args.dataset, args.data_dir)
    x_test = x_test[:args.test_size]
    if _uses_binarization(args.binarize, model.likelihood):
        x_test = vk.data.binarize(x_test, seed=args.seed + 2)
    results = _evaluate(model, x_test, args.iwae_samples, args.seed)
    for key, value in results.items():
        print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def _sample_command(args):
    from vae_keras import plotting

    model = _load_model(args.model)
    figure = plotting.image_grid(model.sample(args.num_samples, seed=args.seed), ncols=args.columns)
    _save_figure(figure, args.output)
    print(f"Wrote {args.num_samples} samples to {args.output}")
    return 0


def main(argv=None):
    """Entry point of ``vae-keras`` and ``python -m vae_keras``; returns the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    _check_arguments(parser, args)
    command = {"train": _train, "evaluate": _evaluate_command, "sample": _sample_command}
    try:
        return command[args.command](args)
    except (ValueError, TypeError, RuntimeError) as error:
        # Our errors already say what to fix: print them without a traceback.
        print(f"vae-keras {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
