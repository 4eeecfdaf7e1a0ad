"""Compare what runs left in their folders: `python -m linesweep.compare [folders]`.

runs.py reads one folder into a `Run`; table.py turns runs into the comparison table; question.py
reads what a sweep asked; plots.py and report.py draw it; cli.py is the command; dataframe.py is
`linesweep.load_runs`, the same runs as a pandas DataFrame.
"""
