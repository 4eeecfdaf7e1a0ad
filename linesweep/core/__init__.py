"""What one run, a sweep and compare all rely on: errors, atomic files, metrics, processes."""
