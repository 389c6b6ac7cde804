"""Run one notebook at several seeds and store what it recorded: the notebook's seed table.

A notebook that makes a claim about variation ("beta = 1 wins on every seed") must
show the evidence. This script runs the notebook with papermill, once per seed, in
full mode (or fast mode, for trying the script out), each run with
``VAE_KERAS_RECORD`` pointing at a file where ``vae_keras.course.record(name, value)``
writes what the notebook measured. It then stores one table,
``notebooks/seeds/NN.json``: the seeds, each run's values, the date, the versions,
the mode, and a hash of the notebook's code cells. The notebook loads it with
``vk.course.seed_table("NN")`` and prints it beside the claim; ``tests/test_notebooks.py``
fails when the code has changed since (the hash no longer matches).

    python tools/seed_table.py notebooks/03_elbo.ipynb --seeds 0 1 2
    python tools/seed_table.py notebooks/03_elbo.ipynb --seeds 0 1 --fast --output /tmp/03.json

The executed notebooks are thrown away (``--keep DIR`` keeps them): the committed
notebook is made by its own full run, which loads the finished table.
"""

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vae_keras import course  # noqa: E402  (light: no TensorFlow in this process)


def _versions():
    """The versions that shape the results, read without importing the packages."""
    from importlib import metadata

    versions = {}
    for name in ("tensorflow", "keras", "numpy", "scikit-learn"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def run_seeds(notebook, seeds, fast=False, keep=None, timeout=3600, kernel=None):
    """Run ``notebook`` once per seed; return ``[(seed, recorded values), ...]``.

    Raises:
        RuntimeError: the notebook has no ``parameters`` cell setting ``SEED``, a run
            failed, or recorded nothing (the notebook calls no ``vk.course.record``).
    """
    import papermill

    notebook = pathlib.Path(notebook)
    problem = course.seed_parameter_problem(notebook)
    if problem:  # papermill would run every seed with the notebook's own SEED, silently
        raise RuntimeError(problem)
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        for seed in seeds:
            record_file = pathlib.Path(scratch) / f"seed{seed}.json"
            output = (pathlib.Path(keep) if keep else pathlib.Path(scratch)) / (
                f"{notebook.stem}.seed{seed}.ipynb")
            output.parent.mkdir(parents=True, exist_ok=True)
            environment = {course.RECORD_VARIABLE: str(record_file),
                           "VAE_KERAS_FAST": "1" if fast else "0", "MPLBACKEND": "Agg"}
            saved = {key: os.environ.get(key) for key in environment}
            os.environ.update(environment)
            start = time.perf_counter()
            try:
                papermill.execute_notebook(str(notebook), str(output), parameters={"SEED": seed},
                                           cwd=str(notebook.parent), kernel_name=kernel,
                                           execution_timeout=timeout, progress_bar=False)
            except Exception as error:  # papermill's own error names the failing cell
                raise RuntimeError(f"{notebook.name} failed at seed {seed}: {error}") from error
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
            if not record_file.is_file():
                raise RuntimeError(f"{notebook.name} recorded nothing at seed {seed}: it must call "
                                   f"vk.course.record(name, value) for the values of its table.")
            values = json.loads(record_file.read_text())
            print(f"seed {seed}: {len(values)} values in {time.perf_counter() - start:.0f} s",
                  flush=True)
            runs.append((seed, values))
    return runs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", type=pathlib.Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fast", action="store_true",
                        help="fast mode (VAE_KERAS_FAST=1), to try the script; tables the "
                             "notebooks load come from full mode")
    parser.add_argument("--output", type=pathlib.Path, default=None,
                        help="where to write the table (default notebooks/seeds/NN.json)")
    parser.add_argument("--keep", type=pathlib.Path, default=None,
                        help="keep the executed notebooks in this folder")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebook's)")
    args = parser.parse_args(argv)
    if not args.notebook.is_file():
        parser.error(f"no notebook at {args.notebook}")
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f"each seed once, got {args.seeds}")
    # The hash is taken before the runs and checked after them: a table must carry the hash of
    # the code that made its values, and an edit during a long run would otherwise slip in.
    code_before = course.code_hash(args.notebook)
    runs = run_seeds(args.notebook, args.seeds, args.fast, args.keep, args.timeout, args.kernel)
    if course.code_hash(args.notebook) != code_before:
        print(f"{args.notebook.name}'s code changed while it ran; no table written. Run it again.",
              file=sys.stderr)
        return 1
    table = course.make_table(args.notebook, runs, "fast" if args.fast else "full", _versions())
    output = args.output or course.seed_table_path(args.notebook)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    print(f"wrote {output}: {len(runs)} seeds, code hash {table['code_hash']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
