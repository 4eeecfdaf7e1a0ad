"""Compare what runs left in their folders: `python -m linesweep.compare [folders]`.

runs.py reads one folder into a `Run`; table.py turns runs into the comparison table; plots.py
and report.py draw it; cli.py is the command.
"""
