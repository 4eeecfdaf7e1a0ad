"""Compare what runs left in their folders: `python -m linesweep.compare [folders]`.

Reading: runs.py finds run folders and reads one into a `Run` (row.py: the record and its
cells), its files' values type-checked by fields.py (summary.json's by summary.py).
The model: table.py builds the `Comparison` (which runs, which columns, best first), with
question.py (what a sweep searched) and groups.py (`--group-seeds`).
The views: display.py (how a cell reads), terminal.py (the table on a terminal, console.py its
printing), table_files.py (table.csv, table.md), plots.py and study_plots.py (the PNGs),
pictures.py (the best run's own PNGs), report.py and markup.py (report.html).
cli.py is the command, output.py its output folder (what it may replace there), studies.py the
study storages it may open, reproduce.py the command that trains a run again; dataframe.py is
`linesweep.load_runs`, the same runs as a pandas DataFrame. Files are read through
linesweep.core.safe_read: folders may come from anyone. compare imports nothing from
linesweep.run or linesweep.sweep: it reads what they wrote.
"""
