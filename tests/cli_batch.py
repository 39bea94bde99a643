"""Runs several CLI invocations in ONE interpreter, each as `python -m MODULE ARGS` would
(runpy, `__main__`), and prints one JSON line per run: exit code, stdout, stderr.

TensorFlow's import costs seconds; paying it once keeps a suite of bad-input checks fast
while every case still goes through the CLI's real `__main__` path. An exception that
escapes a CLI is recorded with its traceback, as the terminal would show it.

    python tests/cli_batch.py CASES.json
"""

import contextlib
import io
import json
import runpy
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout, not an install


def run(module: str, args: list) -> dict:
    out, err = io.StringIO(), io.StringIO()
    code = 0
    sys.argv = [module, *args]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:  # pylint: disable=broad-except  (what a user would see)
            traceback.print_exc()
            code = 1
    return {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}


def main() -> None:
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    for case in cases:
        print(json.dumps({"id": case["id"], **run(case["module"], case["args"])}), flush=True)


if __name__ == "__main__":
    main()
