"""linesweep's Optuna sweeper: search spaces, studies, trial execution, and the job-side link."""
