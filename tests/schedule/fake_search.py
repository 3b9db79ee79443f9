"""A stand-in for ``autocompress search`` in the scheduler's tests: no models, a second at most.

It reads its arguments with the search command's parser, logs them and its working directory
to ``$FAKE_SEARCH_LOG`` (one JSON line a run), then does what ``$FAKE_SEARCH`` (JSON) says:
``trials``, a list of ``"ok"``, ``"fail"`` or ``"prune"`` added to the study; ``sleep``
seconds; ``error``, a line written to stderr before exiting with code 2.
"""

from __future__ import annotations

import json
import os
import sys
import time

import optuna

from autocompress.schedule._args import parse_search_args

optuna.logging.set_verbosity(optuna.logging.WARNING)


def main() -> int:
    ns = parse_search_args(sys.argv[1:])
    with open(os.environ["FAKE_SEARCH_LOG"], "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd()}) + "\n")
    todo = json.loads(os.environ.get("FAKE_SEARCH", "{}"))
    os.makedirs("db", exist_ok=True)
    study = optuna.create_study(
        study_name=ns.study, storage=ns.storage, directions=["maximize", "minimize"], load_if_exists=True
    )
    for i, kind in enumerate(todo.get("trials", [])):
        trial = study.ask()
        trial.set_constraint("budget", -1.0)
        if kind == "ok":
            study.tell(trial, [0.5 + 0.01 * i, 10.0 - i])
        elif kind == "prune":
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
    time.sleep(todo.get("sleep", 0))
    if todo.get("error"):
        print("some progress line", file=sys.stderr)
        print(f"error: {todo['error']}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
