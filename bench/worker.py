"""`python -m bench.worker KIND ARGS_JSON RESULT_PATH`: one measurement in a fresh interpreter.

Each figure measures in its own process so that no figure's imports, JVM or heap reach another's
numbers; the result goes to RESULT_PATH as JSON (stdout is left to the libraries' chatter).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    kind, args, result_path = argv[0], json.loads(argv[1]), Path(argv[2])
    if kind == "bronze":
        from bench.bronze import work
    elif kind == "fetch":
        from bench.fetch import work
    elif kind == "export":
        from bench.export import work
    elif kind == "synth":
        from bench.synth import work
    else:
        raise SystemExit(f"unknown bench worker {kind!r}")
    result = work(args)
    result_path.write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
