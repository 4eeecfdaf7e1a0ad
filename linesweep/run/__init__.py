"""One training run: typed config, data, shape plan, model, trainer, plots and the task itself."""
