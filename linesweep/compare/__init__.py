"""Compare what runs left in their folders: `python -m linesweep.compare [folders]`.

runs.py reads one folder into a `Run`; table.py turns runs into the comparison table; question.py
reads what a sweep asked; plots.py and report.py draw it; cli.py is the command, output.py its
output folder (what it may replace there), studies.py the study storages it may open;
dataframe.py is `linesweep.load_runs`, the same runs as a pandas DataFrame. Files are read
through linesweep.core.safe_read: folders may come from anyone.
"""
