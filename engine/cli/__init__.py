"""The command lines: thin layers over library functions, sharing one contract (`common`)."""
