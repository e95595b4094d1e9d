"""The systems qa-bench compares (catalog.py) and the runners that drive them, one file per family."""
