"""qa-bench: spanqa beside the baselines users would pick, on the same questions (`qa-bench --help`).

Where things are:
- cli.py: the command line (arguments, outputs, exit codes); __main__.py makes `python -m spanqa.benchmarks.qa_bench`.
- options.py: BenchOptions, the settings of one run.
- run.py: one run, from the workload to the report; exports.py: the models each system loads.
- systems/: catalog.py names the systems; seed.py, pipelines.py and spanqa.py drive them; timing.py is what a
  timed pass reports.
- worker.py: one system in a fresh process; results.py: its passes as one comparable row.
- report.py: the Markdown table, JSON and charts; machine.py: what the run ran on.
- ceiling.py: this machine's GEMM rate; flops.py: the model's FLOPs per window.
"""
