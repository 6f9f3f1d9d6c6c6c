"""Platform-aware architecture search: recipes generated from a search space, trained briefly, exported to
INT8 and timed (or predicted) on the target, in an Optuna multi-objective study."""
