"""The command line: ``vae-keras train | evaluate | sample`` (or ``python -m vae_keras``).

This module parses and prints; the work is done by the library. ``train`` runs
:func:`vae_keras.runs.train` (a resumable run: model, checkpoints, metrics and
figures in an output folder; see :mod:`vae_keras.runs`), ``evaluate`` reports
a saved model's test ELBO and importance-weighted NLL, ``sample`` draws a grid
of images from the prior. ``train --conditional`` trains a
:class:`~vae_keras.ConditionalVAE`, from which ``sample --label 7`` draws a chosen digit.

Bad numbers are refused by argparse with one line and exit code 2, before any
data is read or model built (TensorFlow itself is imported with ``vae_keras``,
a few seconds on a CPU). The library's own errors (a missing data folder, a file
that is not a model) print their message, without a traceback, and exit 2.
"""

import argparse
import dataclasses
import json
import pathlib
import sys

from vae_keras import _checks, conditional, data, models, performance, plotting, runs

EXIT_INTERRUPTED = runs.EXIT_INTERRUPTED


def _observation_scale(text):
    """``--observation-scale``: a number > 0, or one of the learned kinds."""
    if text in models.LEARNED_SCALES:
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number > 0 or one of {', '.join(models.LEARNED_SCALES)}, got {text!r}")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _add_data_arguments(parser):
    parser.add_argument("--dataset", default="mnist", choices=list(data.DATASETS),
                        help="which dataset")
    parser.add_argument("--data-dir", default=None,
                        help=f"folder with mnist/ and fashion-mnist/ IDX files "
                             f"(default: ${data.DATA_DIR_VARIABLE}, else Keras downloads)")


def _build_parser():
    defaults = runs.RunSettings()
    parser = argparse.ArgumentParser(
        prog="vae-keras", description="Train, evaluate and sample Variational Autoencoders.")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a VAE and write model, metrics and figures",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_data_arguments(train)
    train.add_argument("--architecture", default=defaults.architecture,
                       choices=list(_checks.ARCHITECTURES))
    train.add_argument("--latent-dim", type=int, default=defaults.latent_dim)
    train.add_argument("--likelihood", default=defaults.likelihood,
                       choices=list(_checks.LIKELIHOODS))
    train.add_argument("--observation-scale", type=_observation_scale,
                       default=defaults.observation_scale,
                       help="sigma of the Gaussian likelihood: a number, or learned / "
                            "learned_per_pixel")
    train.add_argument("--beta", type=float, default=defaults.beta,
                       help="final weight of the KL term")
    train.add_argument("--warmup-epochs", type=float, default=defaults.warmup_epochs,
                       help="raise beta linearly from 0 over this many epochs (0: no warm-up)")
    train.add_argument("--cycle-epochs", type=float, default=defaults.cycle_epochs,
                       help="cyclical KL annealing with cycles of this many epochs (0: off)")
    train.add_argument("--epochs", type=int, default=None,
                       help="epochs in all (default 30, or as many as fit in --time-budget)")
    train.add_argument("--time-budget", type=float, default=defaults.time_budget,
                       help="train for this many minutes (epochs that fit; a resumed run gets "
                            "a new budget), decaying the learning rate to 0 at the end "
                            "(cosine)")
    train.add_argument("--importance-samples", type=int, default=defaults.importance_samples,
                       help="codes per image in the training objective: 1 = the ELBO, "
                            "k > 1 = the importance-weighted bound (IWAE)")
    train.add_argument("--batch-size", type=int, default=defaults.batch_size)
    train.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    train.add_argument("--seed", type=int, default=defaults.seed)
    train.add_argument("--binarize", default=defaults.binarize, choices=list(runs.BINARIZE_CHOICES),
                       help="dynamic binarization of training images; auto = yes for bernoulli")
    train.add_argument("--train-size", type=int, default=None,
                       help="use only the first N training images (quick runs)")
    train.add_argument("--validation-size", type=int, default=defaults.validation_size,
                       help="images held out from the training set for validation")
    train.add_argument("--test-size", type=int, default=None,
                       help="evaluate on the first N test images (default: all)")
    train.add_argument("--iwae-samples", type=int, default=defaults.iwae_samples,
                       help="importance samples K for the test NLL (0 skips it)")
    train.add_argument("--output", default=None, help="output folder (default: runs/<settings>)")
    train.add_argument("--verbose", type=int, default=defaults.verbose, choices=[0, 1, 2],
                       help="Keras fit verbosity: 1 = progress bar")
    train.add_argument("--strategy", default=defaults.strategy, choices=list(performance.STRATEGIES),
                       help="tf.distribute strategy: mirrored = all GPUs of this machine, "
                            "multi_worker = several machines (set TF_CONFIG on each)")
    train.add_argument("--precision", default=defaults.precision,
                       choices=list(performance.PRECISIONS),
                       help="mixed = float16 on GPU, bfloat16 on CPU; losses stay float32")
    train.add_argument("--conditional", action="store_true",
                       help="train a conditional VAE on (image, label) pairs; its samples "
                            "figure has one row per class")
    train.add_argument("--resume", action="store_true",
                       help="continue the interrupted run in --output from its last epoch, "
                            "with its saved settings (--epochs may extend it)")

    evaluate = commands.add_parser("evaluate", help="test ELBO and NLL of a saved model",
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    evaluate.add_argument("model", help="path to a .keras file written by train")
    _add_data_arguments(evaluate)
    evaluate.add_argument("--iwae-samples", type=int, default=1000)
    evaluate.add_argument("--test-size", type=int, default=None)
    evaluate.add_argument("--binarize", default="auto", choices=list(runs.BINARIZE_CHOICES),
                          help="binarize the test set once (seed 0); auto = yes for bernoulli")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--json", default=None, help="also write the results to this file")

    sample = commands.add_parser("sample", help="a PNG grid of images drawn from the prior",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sample.add_argument("model", help="path to a .keras file written by train")
    sample.add_argument("--num-samples", type=int, default=64)
    sample.add_argument("--columns", type=int, default=8)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--label", type=int, default=None,
                        help="the class to draw, for a model trained with --conditional "
                             "(default: one row per class)")
    sample.add_argument("--output", default="samples.png")
    return parser


def _check_arguments(parser, args):
    """Turn bad numbers into argparse errors (one line, exit 2) before any work starts."""
    for name in ["latent_dim", "epochs", "batch_size", "num_samples", "columns", "train_size",
                 "test_size"]:
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


def _train_command(args):
    fields = {field.name for field in dataclasses.fields(runs.RunSettings)}
    settings = runs.RunSettings(**{key: value for key, value in vars(args).items()
                                   if key in fields})
    metrics = runs.train(settings, resume=args.resume)
    output = pathlib.Path(metrics["settings"]["output"] or settings.output_folder())
    if metrics["status"] != "completed":
        model_path = output / runs.TrainingCheckpoint.MODEL
        saved = (f"the best model so far is in {model_path}" if model_path.exists()
                 else "no epoch finished, so no model was saved")
        print(f"{metrics['message']} Stopped after {metrics['epochs_completed']} epochs; {saved}. "
              f"Continue with: vae-keras train --output {output} --resume", file=sys.stderr)
        return EXIT_INTERRUPTED if metrics["status"] == "interrupted" else 1
    test = metrics["test"]
    line = f"Test ELBO {test['elbo']:.2f} nats"
    if "nll_nats" in test:
        line += f", NLL {test['nll_nats']:.2f} nats ({test['bits_per_dim']:.4f} bits/dim)"
    print(f"{line}. Wrote {output}/ (model.keras, metrics.json, figures).")
    return 0


def _evaluate_command(args):
    import keras

    keras.utils.set_random_seed(args.seed)
    model = runs.load_model(args.model)
    (x_train, _), (x_test, y_test) = data.load_dataset(args.dataset, args.data_dir)
    data.warn_about_overlap(x_train, x_test, source=args.dataset)
    x_test, y_test = x_test[:args.test_size], y_test[:args.test_size]
    settings = runs.RunSettings(binarize=args.binarize, likelihood=model.likelihood)
    if settings.uses_binarization:
        x_test = data.binarize(x_test, seed=args.seed + 2)
    labels = y_test if isinstance(model, conditional.ConditionalVAE) else None
    results = runs.evaluate(model, x_test, args.iwae_samples, args.seed, labels=labels)
    for key, value in results.items():
        print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def _sample_command(args):
    import matplotlib.pyplot as plt

    model = runs.load_model(args.model)
    if not isinstance(model, conditional.ConditionalVAE):
        if args.label is not None:
            raise ValueError(f"--label needs a conditional model (vae-keras train "
                             f"--conditional); {args.model} holds a {type(model).__name__}.")
        images = model.sample(args.num_samples, seed=args.seed)
    elif args.label is None:  # one row of each class
        images = runs.samples_by_class(model, args.columns, args.seed)
    else:
        images = model.sample(args.num_samples, labels=args.label, seed=args.seed)
    figure = plotting.image_grid(images, ncols=args.columns)
    figure.savefig(args.output, bbox_inches="tight")
    plt.close(figure)
    print(f"Wrote {len(images)} samples to {args.output}")
    return 0


def main(argv=None):
    """Entry point of ``vae-keras`` and ``python -m vae_keras``; returns the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    _check_arguments(parser, args)
    command = {"train": _train_command, "evaluate": _evaluate_command, "sample": _sample_command}
    try:
        return command[args.command](args)
    except (ValueError, TypeError, RuntimeError) as error:
        # Our errors already say what to fix: print them without a traceback.
        print(f"vae-keras {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
