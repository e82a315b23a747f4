"""Warm start: `spectrascope` from process start to the first Logits table, vs a bare HF load.

"Warm" = the embedded model is already converted and the files are in the page cache (one
throwaway start runs first). Each round starts two fresh processes, in turn, so load spikes
hit both alike:

- ours: the real app (tui/cli.py's run_tui, headless), timed until the first prompt result has
  been shown by every pane; its load phases are read from the app's own progress messages;
- baseline: `AutoTokenizer` + `AutoModelForCausalLM.from_pretrained` on the same cached folder,
  the same dtype, and one forward of the same prompt: what any HF user pays to see one logit.

    .venv/bin/python bench/bench_warm_start.py [--rounds 3] [--prompt TEXT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

PROMPT = "The Eiffel Tower is located in the city of"

OURS = r"""
import json, os, sys, time
START = float(os.environ["BENCH_START"])
marks = {}
def mark(name):
    marks.setdefault(name, time.time() - START)
mark("python up")
import spectrascope.tui.app as app_module
from spectrascope.tui import cli
mark("imports")

class Timed(app_module.SpectrascopeApp):
    def on_load_progress(self, message):
        mark(message.text)
        super().on_load_progress(message)
    def on_session_ready(self, message):
        mark("session ready")
        super().on_session_ready(message)
    def on_result_ready(self, message):
        super().on_result_ready(message)
        mark("first result shown")
        print("BENCH " + json.dumps(marks), flush=True)  # run_tui may leave with os._exit
        self.exit()
    def run(self, *args, **kwargs):
        kwargs["headless"] = True
        return super().run(*args, **kwargs)

app_module.SpectrascopeApp = Timed
cli.main(["--prompt", sys.argv[1]])
"""

BARE = r"""
import json, os, sys, time
START = float(os.environ["BENCH_START"])
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from spectrascope.core.engine.embedded import embedded_dir
folder = embedded_dir()
tok = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16)
with torch.no_grad():
    logits = model(**tok(sys.argv[1], return_tensors="pt")).logits[0, -1]
print("BENCH " + json.dumps({"first logits": time.time() - START, "top": int(logits.argmax())}), flush=True)
"""


def start(code: str, prompt: str) -> dict:
    env = dict(os.environ, BENCH_START=repr(time.time()))
    done = subprocess.run([sys.executable, "-c", code, prompt], env=env, capture_output=True, text=True,
                          timeout=600)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH "):
            return json.loads(line[6:])
    raise RuntimeError(f"no timing from the child (rc {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prompt", default=PROMPT)
    args = parser.parse_args()
    start(BARE, args.prompt)  # warm the page cache and the embedded conversion
    start(OURS, args.prompt)
    ours, bare = [], []
    for _ in range(args.rounds):
        ours.append(start(OURS, args.prompt))
        bare.append(start(BARE, args.prompt))
    print(f"{'phase (ours, seconds since process start)':48s} median of {args.rounds}")
    for name in ours[-1]:
        values = [o[name] for o in ours if name in o]
        print(f"  {name[:46]:46s} {statistics.median(values):6.2f}")
    o = statistics.median(o["first result shown"] for o in ours)
    b = statistics.median(b["first logits"] for b in bare)
    print(f"ours, to the first Logits table : {o:6.2f} s")
    print(f"bare HF, load + one forward     : {b:6.2f} s")
    print(f"ratio ours / bare               : {o / b:6.2f}x   (target: ours <= 10 s)")


if __name__ == "__main__":
    main()
