import sys

from harness.cli import main
from harness.runner.torchrun import exit_worker, in_worker

code = main()
if in_worker():
    exit_worker(code)  # a torchrun worker leaves without interpreter finalisation (gloo aborts there)
sys.exit(code)
