"""The command line: ``vae-keras train | evaluate | sample`` (or ``python -m vae_keras``).

This module parses and prints; the work is done by the library. ``train`` runs
:func:`vae_keras.runs.train` (a resumable run: model, checkpoints, metrics and
figures in an output folder; see :mod:`vae_keras.runs`), ``evaluate`` reports
a saved model's test ELBO and importance-weighted NLL, ``sample`` draws a grid
of images from the prior; both use the prior saved in the model (``train --prior
mixture:50`` fits one after training, ``--prior vamp:500`` trains one). The README's
recommended configuration is one command::

    vae-keras train --latent-dim 32 --hidden-units 512,256,256 --warmup-epochs 5 \
        --time-budget 9 --prior mixture:50 --validation-size 0

``train --conditional`` trains a
:class:`~vae_keras.ConditionalVAE`, from which ``sample --label 7`` draws a chosen digit.

``--help`` and a bad argument answer at once: the parser is built from
:mod:`vae_keras.settings`, which imports only the standard library, and
TensorFlow (seconds to load on a CPU) is imported inside the commands. Bad
numbers are refused by argparse with one line and exit code 2; then, still
before any data is read or file written, ``train`` checks its settings and its
output folder (:func:`vae_keras.settings.prepare`: an existing run is not
replaced without ``--overwrite``, a resumed one keeps its settings). The
library's own errors (a missing data folder, a file that is not a model) print
their message, without a traceback, and exit 2.
"""

import argparse
import dataclasses
import sys

from vae_keras import settings as run_settings  # the standard library only: no TensorFlow

EXIT_INTERRUPTED = run_settings.EXIT_INTERRUPTED
_DEFAULTS = run_settings.RunSettings()
_FIELDS = {field.name for field in dataclasses.fields(run_settings.RunSettings)}


class _HelpFormatter(argparse.HelpFormatter):
    """Ends each option's help with its default, once.

    ``train``'s options default to "not given" (``argparse.SUPPRESS``), so that
    ``--resume`` can tell the options a user typed from the defaults; their
    help shows the :class:`~vae_keras.settings.RunSettings` default instead. An
    option whose help already says its default (what None means) is left as written.
    """

    def _get_help_string(self, action):
        text = action.help or ""
        if "(default" in text or not action.option_strings or action.nargs == 0:
            return text
        default = action.default
        if default is argparse.SUPPRESS:
            default = getattr(_DEFAULTS, action.dest, None)
        return text if default is None else f"{text} (default: {default})"


def _number(whole, lowest, inclusive=True):
    """An argparse ``type=``: a whole or real number within bounds, else one line and exit 2."""
    def parse(text):
        try:
            value = int(text) if whole else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'a whole number' if whole else 'a number'}, got {text!r}") from None
        problem = run_settings.number_problem(value, whole, lowest, inclusive)
        if problem:
            raise argparse.ArgumentTypeError(problem[1])
        return value

    parse.__name__ = "whole number" if whole else "number"  # how argparse names the type
    return parse


def _setting(name):
    """The ``type=`` of a numeric training setting, from its bounds in vae_keras.settings."""
    return _number(*run_settings.NUMBERS[name])


def _observation_scale(text):
    """``--observation-scale``: a number > 0, or one of the learned kinds."""
    if text in run_settings.LEARNED_SCALES:
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number > 0 or one of {', '.join(run_settings.LEARNED_SCALES)}, "
            f"got {text!r}") from None
    problem = run_settings.number_problem(value, False, 0, inclusive=False)
    if problem:
        raise argparse.ArgumentTypeError(problem[1])
    return value


def _parsed(parse, name):
    """An argparse ``type=`` from a parser in :mod:`vae_keras.settings`; a ValueError: one line."""
    def convert(text):
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    convert.__name__ = name  # how argparse names the type
    return convert


def _prior_text(text):
    """``--prior``: checked, and kept as the text (``metrics.json`` records it)."""
    run_settings.parse_prior(text)
    return text.strip().lower()


def _add_data_arguments(parser, defaults):
    parser.add_argument("--dataset", choices=list(run_settings.DATASETS), help="which dataset",
                        **defaults("mnist"))
    parser.add_argument("--data-dir", help=f"folder with mnist/ and fashion-mnist/ IDX files "
                                           f"(default: ${run_settings.DATA_DIR_VARIABLE}, else "
                                           f"Keras downloads)", **defaults(None))


def _add_train_parser(commands):
    resumable = ", ".join(run_settings.option(name) for name in run_settings.RESUMABLE)
    # No defaults here (SUPPRESS): an option is in the parsed arguments only if it was given.
    train = commands.add_parser(
        "train", help="train a VAE and write model, metrics and figures",
        formatter_class=_HelpFormatter, argument_default=argparse.SUPPRESS,
        description="Train a VAE and write model.keras, checkpoints, metrics.json and figures "
                    "to --output. A folder that holds a run is not replaced without "
                    f"--overwrite; --resume continues it with its saved settings (of the "
                    f"options, only {resumable} may be given with it).")
    _add_data_arguments(train, lambda default: {})
    train.add_argument("--architecture", choices=list(run_settings.ARCHITECTURES),
                       help="encoder and decoder")
    train.add_argument("--latent-dim", type=_setting("latent_dim"), help="code size")
    train.add_argument("--hidden-units", type=_parsed(run_settings.parse_hidden_units, "widths"),
                       help="widths of the dense layers, comma-separated, e.g. 512,256,256 "
                            "(default: the architecture's)")
    train.add_argument("--prior", type=_parsed(_prior_text, "prior"),
                       help="p(z): normal; mixture:K, K Gaussians fitted by EM to the training "
                            "images' codes after training and saved in model.keras (evaluate "
                            "and sample use it); vamp:K, a VampPrior of K pseudo-inputs "
                            "trained with the model; or hierarchical:D, a second stochastic "
                            "layer with a top code of D dimensions, trained with the model")
    train.add_argument("--likelihood", choices=list(run_settings.LIKELIHOODS),
                       help="p(x | z): bernoulli for binarized images; gaussian or "
                            "continuous_bernoulli for grey levels")
    train.add_argument("--observation-scale", type=_observation_scale,
                       help="sigma of the Gaussian likelihood (with --likelihood gaussian only): "
                            "a number > 0, or learned / learned_per_pixel")
    train.add_argument("--beta", type=_setting("beta"), help="final weight of the KL term")
    train.add_argument("--warmup-epochs", type=_setting("warmup_epochs"),
                       help="raise beta linearly from 0 over this many epochs "
                            "(default: 0, no warm-up)")
    train.add_argument("--cycle-epochs", type=_setting("cycle_epochs"),
                       help="cyclical KL annealing with cycles of this many epochs "
                            "(default: 0, off)")
    train.add_argument("--epochs", type=_setting("epochs"),
                       help=f"epochs in all (default: {run_settings.DEFAULT_EPOCHS}; with "
                            f"--time-budget, as many as fit; with --resume, the saved run's, "
                            f"and a larger number extends it)")
    train.add_argument("--time-budget", type=_setting("time_budget"),
                       help="train for this many minutes (epochs that fit; a resumed run gets "
                            "a new budget), decaying the learning rate to 0 at the end "
                            "(cosine) (default: no budget, train --epochs)")
    train.add_argument("--importance-samples", type=_setting("importance_samples"),
                       help="codes per image in the training objective: 1 = the ELBO, "
                            "k > 1 = the importance-weighted bound (IWAE)")
    train.add_argument("--batch-size", type=_setting("batch_size"), help="images per batch")
    train.add_argument("--learning-rate", type=_setting("learning_rate"),
                       help="Adam's learning rate")
    train.add_argument("--seed", type=_setting("seed"),
                       help="seeds the weights, the batches and the binarization")
    train.add_argument("--binarize", choices=list(run_settings.BINARIZE_CHOICES),
                       help="dynamic binarization of training images; auto = yes for bernoulli")
    train.add_argument("--train-size", type=_setting("train_size"),
                       help="use only the first N training images, for quick runs "
                            "(default: all)")
    train.add_argument("--validation-size", type=_setting("validation_size"),
                       help="images held out from the training set for validation")
    train.add_argument("--test-size", type=_setting("test_size"),
                       help="evaluate on the first N test images (default: all)")
    train.add_argument("--iwae-samples", type=_setting("iwae_samples"),
                       help="importance samples K for the test NLL (0 skips it)")
    train.add_argument("--output", help="output folder (default: "
                                        "runs/<dataset>-<architecture>-z<dim>-<likelihood>)")
    train.add_argument("--verbose", type=int, choices=list(run_settings.VERBOSITIES),
                       help="Keras fit verbosity: 1 = progress bar")
    train.add_argument("--strategy", choices=list(run_settings.STRATEGIES),
                       help="tf.distribute strategy: mirrored = all GPUs of this machine, "
                            "multi_worker = several machines (set TF_CONFIG on each)")
    train.add_argument("--precision", choices=list(run_settings.PRECISIONS),
                       help="mixed = float16 on GPU, bfloat16 on CPU; losses stay float32")
    train.add_argument("--conditional", action="store_true",
                       help="train a conditional VAE on (image, label) pairs; its samples "
                            "figure has one row per class")
    again = train.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help=f"continue the run in --output from its last completed epoch, with "
                            f"its saved settings: of the options, only {resumable} may be given "
                            f"(a larger --epochs extends a finished run)")
    again.add_argument("--overwrite", action="store_true",
                       help="replace the run that --output already holds (without it, such a "
                            "folder is refused)")


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="vae-keras", description="Train, evaluate and sample Variational Autoencoders.")
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="Keras's backend, before the command: vae-keras --backend jax train "
                             "... (default: $KERAS_BACKEND, else tensorflow). A model saved on "
                             "one backend loads on the others")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_train_parser(commands)

    def default(value):
        return {"default": value}

    evaluate = commands.add_parser("evaluate", help="test ELBO and NLL of a saved model",
                                   formatter_class=_HelpFormatter)
    evaluate.add_argument("model", help="path to a .keras file written by train")
    _add_data_arguments(evaluate, default)
    evaluate.add_argument("--iwae-samples", type=_number(True, 0), default=1000,
                          help="importance samples K for the NLL (0 skips it)")
    evaluate.add_argument("--test-size", type=_number(True, 1), default=None,
                          help="evaluate on the first N test images (default: all)")
    evaluate.add_argument("--binarize", default="auto",
                          choices=list(run_settings.BINARIZE_CHOICES),
                          help="binarize the test set once (seed + 2); auto = yes for bernoulli")
    evaluate.add_argument("--seed", type=_number(True, 0), default=0,
                          help="seeds the codes drawn and the binarization")
    evaluate.add_argument("--json", default=None,
                          help="also write the results to this file (default: print only)")

    sample = commands.add_parser("sample", help="a PNG grid of images drawn from the model's "
                                                "saved prior",
                                 formatter_class=_HelpFormatter)
    sample.add_argument("model", help="path to a .keras file written by train")
    sample.add_argument("--num-samples", type=_number(True, 1), default=64,
                        help="images to draw")
    sample.add_argument("--columns", type=_number(True, 1), default=8,
                        help="images per row (per class, without --label)")
    sample.add_argument("--seed", type=_number(True, 0), default=0, help="seeds the codes")
    sample.add_argument("--label", type=_number(True, 0), default=None,
                        help="the class to draw, for a model trained with --conditional "
                             "(default: one row per class)")
    sample.add_argument("--output", default="samples.png", help="the image file to write")
    return parser


def _train_command(args):
    given = {name: value for name, value in vars(args).items() if name in _FIELDS}
    resume, overwrite = getattr(args, "resume", False), getattr(args, "overwrite", False)
    # Every refusal that needs no data comes before TensorFlow loads: it answers at once.
    settings, _ = run_settings.prepare(run_settings.RunSettings(**given), resume=resume,
                                       overwrite=overwrite, given=list(given))
    from vae_keras import runs

    metrics = runs.train(settings, resume=resume, overwrite=overwrite)
    output = settings.output_folder()
    if metrics["status"] != "completed":
        model_path = output / run_settings.MODEL_FILE
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
    if args.json:
        run_settings.check_output_file(args.json, "--json")
    from vae_keras import conditional, data, runs  # first: TensorFlow loads quietly
    import keras

    keras.utils.set_random_seed(args.seed)
    model = runs.load_model(args.model)
    _, (x_test, y_test) = data.load_dataset(args.dataset, args.data_dir)
    x_test, y_test = x_test[:args.test_size], y_test[:args.test_size]
    settings = run_settings.RunSettings(binarize=args.binarize, likelihood=model.likelihood)
    if settings.uses_binarization:
        x_test = data.binarize(x_test, seed=args.seed + 2)
    labels = y_test if isinstance(model, conditional.ConditionalVAE) else None
    results = runs.evaluate(model, x_test, args.iwae_samples, args.seed, labels=labels)
    for key, value in results.items():
        print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
    if args.json:
        run_settings.write_json(args.json, results)
    return 0


def _sample_command(args):
    run_settings.check_output_file(args.output)
    from vae_keras import conditional, plotting, runs

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
    path = runs.save_figure(plotting.image_grid(images, ncols=args.columns), args.output)
    print(f"Wrote {len(images)} samples to {path}")
    return 0


BACKENDS = ("tensorflow", "jax", "torch")


def use_backend(name):
    """Make Keras run on ``name`` (``--backend``); it must come before Keras is imported.

    Raises:
        ValueError: Keras is loaded already, on another backend (a notebook or a
            script that imported it first), or the backend's package is missing.
    """
    import importlib.util
    import os

    if name is None:
        return os.environ.get("KERAS_BACKEND", "tensorflow")
    if "keras" in sys.modules:
        running = sys.modules["keras"].backend.backend()
        if running != name:
            raise ValueError(f"--backend {name}: Keras is already running on {running} in this "
                             f"process; set KERAS_BACKEND={name} before it is imported.")
        return name
    if importlib.util.find_spec(name) is None:
        extra = ("pip install jax" if name == "jax" else
                 "pip install torch (a CPU build: see pytorch.org)")
        raise ValueError(f"--backend {name} needs the {name} package: {extra}.")
    os.environ["KERAS_BACKEND"] = name
    return name


def main(argv=None):
    """Entry point of ``vae-keras`` and ``python -m vae_keras``; returns the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        use_backend(args.backend)
    except ValueError as error:
        parser.error(str(error))
    command = {"train": _train_command, "evaluate": _evaluate_command, "sample": _sample_command}
    try:
        return command[args.command](args)
    except (ValueError, TypeError, RuntimeError) as error:
        # Our errors already say what to fix: print them without a traceback.
        print(f"vae-keras {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before or after training (runs.train handles it during)
        print(f"vae-keras {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
