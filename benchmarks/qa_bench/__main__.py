"""`python -m spanqa.benchmarks.qa_bench`: the same command as `qa-bench`."""

import sys

from spanqa.benchmarks.qa_bench.cli import main

sys.exit(main())
